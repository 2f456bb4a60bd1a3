// Hash routes: the page's state lives after the `#`, never sent to the server and never holding
// the token.
export type Route =
  | { name: 'overview' }
  | { name: 'target'; node: string; targetKey: string }
  | { name: 'pod'; node: string; namespace: string; pod: string }
  | { name: 'finding'; id: string };

const enc = encodeURIComponent;

export const targetHref = (node: string, targetKey: string) => `#/target/${enc(node)}/${enc(targetKey)}`;
export const podHref = (node: string, namespace: string, pod: string) => `#/pod/${enc(node)}/${enc(namespace)}/${enc(pod)}`;
export const findingHref = (id: string) => `#/finding/${enc(id)}`;

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return '';
    }
  });
  if (parts[0] === 'target' && parts.length === 3 && parts[1] && parts[2]) return { name: 'target', node: parts[1], targetKey: parts[2] };
  if (parts[0] === 'pod' && parts.length === 4 && parts[1] && parts[3]) return { name: 'pod', node: parts[1], namespace: parts[2] ?? '', pod: parts[3] };
  if (parts[0] === 'finding' && parts.length === 2 && parts[1]) return { name: 'finding', id: parts[1] };
  return { name: 'overview' };
}
