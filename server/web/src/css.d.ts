// esbuild bundles CSS imported from the entry into one stylesheet.
declare module '*.css';
