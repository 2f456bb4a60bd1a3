// What every view shares: who signed in, and the live stream's events fanned out to the views
// that are on screen.
import type { Whoami } from './api.js';
import type { Finding, FindingChange, SeriesPoint, TargetInfo } from './wire.js';

export type LiveMessage =
  | { type: 'findings'; node: string; events: Array<{ change: FindingChange; finding: Finding }> }
  | { type: 'series'; node: string; targets: TargetInfo[]; points: SeriesPoint[] };

type Listener = (m: LiveMessage) => void;
const listeners = new Set<Listener>();

export const session: { who: Whoami | null } = { who: null };

export function can(scope: 'read' | 'snapshots' | 'admin'): boolean {
  return session.who?.effectiveScopes.includes(scope) ?? false;
}

export function onLive(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function dispatchLive(m: LiveMessage): void {
  for (const fn of [...listeners]) {
    try {
      fn(m);
    } catch (err) {
      console.error('live listener failed', err);
    }
  }
}

export interface View {
  el: HTMLElement;
  dispose(): void;
}
