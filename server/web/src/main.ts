// The page's entry: sign in with a token (kept in sessionStorage), then the hash router over the
// views, with one live stream feeding them all.
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { ApiError, apiGet, forgetToken, storedToken, storeToken, streamEvents, whenTokenRejected, type Whoami } from './api.js';
import { dispatchLive, session, type LiveMessage, type View } from './app-state.js';
import { h } from './dom.js';
import { findingView } from './finding-view.js';
import { overviewView } from './overview.js';
import { parseRoute } from './routes.js';
import { targetView } from './target-view.js';
import { treeView } from './tree-view.js';

const root = document.getElementById('app')!;
let current: View | null = null;
let stopStream: (() => void) | null = null;

function signIn(message = ''): void {
  stopStream?.();
  stopStream = null;
  current?.dispose();
  current = null;
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', placeholder: 'lw_…', 'data-testid': 'token-input', required: true });
  const error = h('p', { class: 'error', 'data-testid': 'signin-error' }, message);
  const form = h(
    'form',
    { class: 'signin' },
    h('h2', {}, 'Sign in'),
    h('p', {}, 'Paste a collector token with the ', h('code', {}, 'read'), ' scope (`leakwatch up` prints the admin one and saves it to .leakwatch/local-token). It stays in this tab only.'),
    input,
    h('button', { type: 'submit', 'data-testid': 'signin-button' }, 'Sign in'),
    error,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    apiGet<Whoami>('/api/v1/whoami', token)
      .then((who) => {
        if (!who.effectiveScopes.includes('read')) {
          error.textContent = `token "${who.name}" lacks the read scope (it has ${who.scopes.join(', ')})`;
          return;
        }
        storeToken(token);
        start(who);
      })
      .catch((err: Error) => (error.textContent = err instanceof ApiError && err.status === 401 ? 'that token is not valid here' : `cannot reach the collector: ${err.message}`));
  });
  root.replaceChildren(form);
  input.focus();
}

function start(who: Whoami): void {
  session.who = who;
  const live = h('span', { class: 'live', 'data-testid': 'live-state' }, 'connecting…');
  const header = h(
    'header',
    {},
    h('h1', {}, h('a', { href: '#/' }, 'leakwatch')),
    live,
    h('span', { class: 'who' }, `${who.name} (${who.effectiveScopes.join(', ')})`),
    h('button', { type: 'button', class: 'small', 'data-testid': 'signout', onclick: () => (forgetToken(), (location.hash = '#/'), signIn()) }, 'Sign out'),
  );
  const main = h('main');
  root.replaceChildren(header, main);
  stopStream = streamEvents({
    onEvent(type, data) {
      if (type === 'findings' || type === 'series') dispatchLive(data as LiveMessage);
    },
    onState(state, detail) {
      live.textContent = state === 'live' ? '● live' : state === 'reconnecting' ? '○ reconnecting' : `○ not live${detail ? `: ${detail}` : ''}`;
      live.className = `live ${state}`;
    },
  });
  const route = (): void => {
    current?.dispose();
    const r = parseRoute(location.hash);
    current = r.name === 'target' ? targetView(r.node, r.targetKey) : r.name === 'pod' ? treeView(r.node, r.namespace, r.pod) : r.name === 'finding' ? findingView(r.id) : overviewView();
    main.replaceChildren(current.el);
  };
  window.onhashchange = route;
  route();
}

whenTokenRejected(() => {
  forgetToken();
  signIn('the collector no longer accepts this token: sign in again');
});

const token = storedToken();
if (token) {
  apiGet<Whoami>('/api/v1/whoami', token)
    .then(start)
    .catch((err: Error) => {
      if (err instanceof ApiError && err.status === 401) forgetToken();
      signIn(err instanceof ApiError && err.status === 401 ? 'the saved token is no longer valid' : `cannot reach the collector: ${err.message}`);
    });
} else {
  signIn();
}
