// Validates Prometheus Operator objects (ServiceMonitor, PrometheusRule, ...) offline against
// the schemas of the npm package @kubernetes-models/prometheus-operator, which are generated
// from the operator's Go API types (monitoring.coreos.com/v1): types, required fields, enums,
// duration patterns. Those schemas allow unknown fields, as a CRD does until the API server
// prunes them; like `kubectl apply --validate=strict`, this also rejects every field that the
// package's type declarations (.d.ts) do not name, so a misspelt key fails here instead of
// being silently dropped.
//
//   node validate_crds.mjs NODE_MODULES OBJECTS.json
//
// OBJECTS.json is a JSON array of objects; each line of output names one object. Exit 1 if
// any object is invalid or of a kind the package does not know.

import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, objectsFile] = process.argv.slice(2);
if (!nodeModules || !objectsFile) {
  console.error("usage: node validate_crds.mjs NODE_MODULES OBJECTS.json");
  process.exit(2);
}
const pkg = join(nodeModules, "@kubernetes-models", "prometheus-operator");
const version = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")).version;

// Every interface and class declared by the @kubernetes-models packages and kubernetes-models,
// by each name it is exported under: name -> {property: type text}.
const types = new Map();
function indexDeclarations(dir) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      if (entry !== "node_modules") indexDeclarations(path);
      continue;
    }
    if (!entry.endsWith(".d.ts")) continue;
    const text = readFileSync(path, "utf8");
    const cls = /export declare class (\w+) extends Model<(\w+)>[^{]*\{([\s\S]*?)\n\s*constructor\(/.exec(text);
    if (!cls) continue;
    const props = {};
    for (const m of cls[3].matchAll(/^ {4}"([^"]+)"\??: ([^\n]*)$/gm)) props[m[1]] = m[2].replace(/;$/, "");
    const names = [cls[1], cls[2]];
    for (const m of text.matchAll(/export type \{([^}]*)\}/g)) {
      for (const part of m[1].split(",")) {
        const [local, exported] = part.trim().split(/\s+as\s+/);
        if (exported && (local === cls[1] || local === cls[2])) names.push(exported);
      }
    }
    for (const n of names) types.set(n, props);
  }
}
for (const dir of ["@kubernetes-models", "kubernetes-models"]) indexDeclarations(join(nodeModules, dir));

// Unknown fields, following object and array-of-object types; maps and scalars are left to
// the schema validation.
function unknownFields(value, typeName, path, out) {
  const props = types.get(typeName);
  if (!props || value === null || typeof value !== "object" || Array.isArray(value)) return;
  for (const [key, child] of Object.entries(value)) {
    const type = props[key];
    if (type === undefined) {
      out.push(`${path}/${key}: unknown field (not in ${typeName.replace(/^I(ComGithub\w+V1)?/, "")})`);
      continue;
    }
    const array = /^Array<(\w+)>$/.exec(type);
    if (array && Array.isArray(child)) child.forEach((c, i) => unknownFields(c, array[1], `${path}/${key}/${i}`, out));
    else if (/^\w+$/.test(type)) unknownFields(child, type, `${path}/${key}`, out);
  }
}

const groups = {};
async function models(apiVersion) {
  const [group, ver] = apiVersion.split("/");
  if (group !== "monitoring.coreos.com" || !ver) return null;
  if (!(apiVersion in groups)) {
    try {
      groups[apiVersion] = await import(pathToFileURL(join(pkg, group, ver, "index.js")).href);
    } catch {
      groups[apiVersion] = null;
    }
  }
  return groups[apiVersion];
}

const objects = JSON.parse(readFileSync(objectsFile, "utf8"));
let failed = 0;
for (const obj of objects) {
  const what = `${obj.kind} ${obj.metadata?.name}`;
  const Model = (await models(obj.apiVersion ?? ""))?.[obj.kind];
  if (!Model) {
    console.log(`FAIL ${what}: ${obj.apiVersion} ${obj.kind} is not a Prometheus Operator kind`);
    failed++;
    continue;
  }
  const problems = [];
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(e.message);
  }
  unknownFields(obj, `I${obj.kind}`, "", problems);
  if (problems.length) {
    console.log(`FAIL ${what}: ${problems.join("; ")}`);
    failed++;
  } else {
    console.log(`ok   ${what} (${obj.apiVersion}, @kubernetes-models/prometheus-operator ${version}, strict fields)`);
  }
}
console.log(`${objects.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
