// Human-readable rendering shared by the commands that print tables.
export { formatBytes, formatDuration } from '../common/units.js';

/** Fixed-width columns; the last column is left unpadded so long command lines do not wrap needlessly. */
export function renderTable(header: string[], rows: string[][], rightAligned: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => {
        if (i === cells.length - 1) return cell;
        const w = widths[i] ?? 0;
        return rightAligned.has(i) ? cell.padStart(w) : cell.padEnd(w);
      })
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Control characters in a target's command line must not drive the engineer's terminal. */
export function printable(text: string, max = 120): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}
