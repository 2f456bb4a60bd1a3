// Every document of daemonset.yaml parses and is a valid Kubernetes object by the API's own
// schemas (kubernetes-models, offline), with no field the schema does not know.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kindAndName, loadManifest } from '../support/manifest.js';
import { unknownFields, validateObject } from '../support/k8s-schema.js';

describe('daemonset.yaml against the Kubernetes schemas', () => {
  const docs = loadManifest();

  it('holds the documents the deployment needs, in an order kubectl can apply', () => {
    const names = docs.map((d) => kindAndName(d.object));
    assert.deepEqual(names, [
      'Namespace/leakwatch',
      'ServiceAccount/leakwatch-agent',
      'DaemonSet/leakwatch-agent',
      'ServiceAccount/leakwatch-collector',
      'PersistentVolumeClaim/leakwatch-collector-data',
      'Deployment/leakwatch-collector',
      'Service/leakwatch-collector',
      'NetworkPolicy/leakwatch-collector',
    ]);
    for (const d of docs.slice(1)) {
      assert.equal((d.object.metadata as { namespace?: string }).namespace, 'leakwatch', `${kindAndName(d.object)} is in the leakwatch namespace`);
    }
  });

  for (const d of docs) {
    it(`${kindAndName(d.object)} is valid and has no unknown field`, async () => {
      await validateObject(d.object);
      assert.deepEqual(await unknownFields(d.object), []);
    });
  }
});

describe('the schema check can fail', () => {
  const daemonSet = () => structuredClone(loadManifest().find((d) => d.object.kind === 'DaemonSet')!.object) as any;

  it('a misspelt field is reported with its path', async () => {
    const o = daemonSet();
    o.spec.template.spec.containers[0].securityContex = o.spec.template.spec.containers[0].securityContext;
    delete o.spec.template.spec.containers[0].securityContext;
    await validateObject(o);
    assert.deepEqual(await unknownFields(o), ['/spec/template/spec/containers/0/securityContex']);
  });

  it('a wrong type and a missing required field are refused', async () => {
    const o = daemonSet();
    o.spec.template.spec.containers[0].resources.limits.memory = { bytes: 1 };
    await assert.rejects(validateObject(o), /containers\/0\/resources\/limits\/memory/);
    const p = daemonSet();
    delete p.spec.selector;
    await assert.rejects(validateObject(p), /data\/spec must have required property selector/);
  });

  it('a kind the schemas do not have is an error, not a pass', async () => {
    await assert.rejects(validateObject({ apiVersion: 'apps/v1', kind: 'DaemonSetz', metadata: { name: 'x' } }), /no schema for apps\/v1 DaemonSetz/);
  });

  it('a YAML syntax error names the document', () => {
    assert.throws(() => loadManifest('a: 1\n---\nb: [1, 2\n'), /daemonset\.yaml document 1:/);
  });
});
