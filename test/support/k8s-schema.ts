// Validation of a Kubernetes object against the API's OpenAPI schemas, offline: kubernetes-models
// ships them compiled to validators. Those accept unknown fields (the schemas do not forbid
// them) while the API server drops or refuses them, so a misspelt field ("securityContex")
// would pass silently; unknownFields() catches that by watching which properties the validator
// looks at: it reads every property its schema defines, so a key it never read is not in it.

interface ModelClass {
  prototype: { validate(): void };
}

/** `apps/v1` + `DaemonSet` → the model class, or an error naming what is not supported. */
export async function modelFor(apiVersion: string, kind: string): Promise<ModelClass> {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : [null, apiVersion];
  const path = group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(path)) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`no schema for ${apiVersion} ${kind} (${(err as Error).message.split('\n')[0]})`);
  }
  const cls = mod[kind] as ModelClass | undefined;
  if (!cls) throw new Error(`kubernetes-models has no ${kind} in ${path}`);
  return cls;
}

/** Validates against the schema; throws with the validator's message (paths of what is wrong). */
export async function validateObject(object: Record<string, unknown>): Promise<void> {
  const cls = await modelFor(String(object.apiVersion), String(object.kind));
  cls.prototype.validate.call(object);
}

/** Paths (`/spec/template/...`) of keys the schema does not define. Run on a valid object. */
export async function unknownFields(object: Record<string, unknown>): Promise<string[]> {
  const cls = await modelFor(String(object.apiVersion), String(object.kind));
  const read = new WeakMap<object, Set<string>>();
  const watch = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    const target = value as object;
    if (!read.has(target)) read.set(target, new Set());
    return new Proxy(target, {
      get(t, key, receiver) {
        if (typeof key === 'string') read.get(t)!.add(key);
        return watch(Reflect.get(t, key, receiver));
      },
    });
  };
  try {
    cls.prototype.validate.call(watch(object));
  } catch {
    // Invalid objects are validateObject()'s to report; the keys read so far still count.
  }
  const unknown: string[] = [];
  const walk = (value: unknown, path: string): void => {
    if (value === null || typeof value !== 'object') return;
    const seen = read.get(value);
    for (const [key, child] of Object.entries(value)) {
      const here = `${path}/${key}`;
      if (!Array.isArray(value) && seen && !seen.has(key)) unknown.push(here);
      else walk(child, here);
    }
  };
  walk(object, '');
  return unknown;
}
