// Validates the custom resources the chart renders and the Argo CD manifests against their
// CRDs' schemas (the @kubernetes-models packages carry them), which kubernetes-validate does not:
//   node deploy/check/crds.mjs FILE...
// Exits non-zero, naming the object and the problem, on any invalid object or on a custom kind
// it has no schema for.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// The packages live in a directory of their own (scripts/check-deploy installs them, pinned).
const modules = process.env.STATUSPAGE_CRD_MODULES;
const yaml = createRequire(modules + "/")("js-yaml");
const load = (path) => import(pathToFileURL(join(modules, "@kubernetes-models", path, "index.js")));
const models = {
  "monitoring.coreos.com/v1": await load("prometheus-operator/monitoring.coreos.com/v1"),
  "external-secrets.io/v1": await load("external-secrets/external-secrets.io/v1"),
  "argoproj.io/v1alpha1": await load("argo-cd/argoproj.io/v1alpha1"),
};
// Kinds kubernetes-validate covers (the core API): not ours to check here.
const core = (apiVersion) => !apiVersion.includes(".") || /\.k8s\.io\//.test(apiVersion);

let failed = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
    if (!doc || core(doc.apiVersion)) continue;
    const what = `${file}: ${doc.kind}/${doc.metadata?.name} (${doc.apiVersion})`;
    const Model = models[doc.apiVersion]?.[doc.kind];
    if (!Model) {
      console.log(`${what}: no schema for this kind`);
      failed++;
      continue;
    }
    try {
      new Model(doc).validate();
      checked++;
    } catch (e) {
      const details = (e.errors ?? []).map((d) => `${d.instancePath || "/"} ${d.message}`).join("; ");
      console.log(`${what}: ${details || e.message}`);
      failed++;
    }
  }
}
console.log(`${checked} custom resources valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
