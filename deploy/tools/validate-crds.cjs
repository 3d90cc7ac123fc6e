// Validates the prometheus-operator objects (PrometheusRule, ServiceMonitor) of rendered
// manifests against their CRD schemas, which kubernetes-validate does not have: the validators
// npm's @kubernetes-models/prometheus-operator generates from the operator's CRDs.
//   node deploy/tools/validate-crds.cjs <node_modules dir> <manifest.yaml>...
// Exits 1 when an object is invalid, and when a file holds a custom kind this script does not
// know (so a new kind cannot pass unchecked).
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const [modules, ...files] = process.argv.slice(2);
const req = (m) => require(path.join(path.resolve(modules), m));
const yaml = req("js-yaml");
const v1 = req("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1");
const kinds = { PrometheusRule: v1.PrometheusRule, ServiceMonitor: v1.ServiceMonitor };

let bad = 0;
let checked = 0;
for (const file of files) {
  for (const doc of yaml.loadAll(fs.readFileSync(file, "utf8"))) {
    if (!doc || typeof doc.apiVersion !== "string" || !doc.apiVersion.includes(".")) continue;
    if (!doc.apiVersion.endsWith(".coreos.com/v1")) continue;
    const name = `${file}: ${doc.kind} ${doc.metadata && doc.metadata.name}`;
    const Model = kinds[doc.kind];
    if (!Model) {
      console.error(`UNKNOWN ${name}: no schema here for ${doc.apiVersion} ${doc.kind}`);
      bad++;
      continue;
    }
    try {
      new Model(doc).validate();
      checked++;
    } catch (e) {
      console.error(`INVALID ${name}: ${e.message}`);
      bad++;
    }
  }
}
console.log(`validate-crds: ${checked} custom objects valid, ${bad} invalid`);
process.exit(bad ? 1 : 0);
