// Tests build their pods with the same code `leakwatch demo` uses.
export * from '../../demo/fake-pod.js';
