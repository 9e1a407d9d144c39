// index.d.ts against schemas/ (generated from the sidecar's own Structs): same properties, same
// optionality, same types, so the declarations cannot drift from the protocol.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { PACKAGE_DIR, REPO_DIR, readJson } from "../test-support/harness.js";

// TypeScript interface -> [schema file, the Struct it declares]
const DECLARED = {
  DiffusionClientParams: ["methods/diffusion.params.json", "DiffusionParams"],
  DiffusionResult: ["methods/diffusion.result.json", "DiffusionResult"],
  DiffusionStats: ["methods/diffusion.result.json", "DiffusionStats"],
  DiffusionProgressTick: ["notifications/diffusion.progress.json", "DiffusionProgress"],
  DiffusionPreview: ["notifications/diffusion.preview.json", "DiffusionPreview"],
  LoadModelParams: ["methods/loadModel.params.json", "LoadModelParams"],
  ModelConfig: ["methods/loadModel.params.json", "ModelConfig"],
  LoadModelResult: ["methods/loadModel.result.json", "LoadModelResult"],
  LoadModelProgress: ["notifications/loadModel.progress.json", "LoadModelProgress"],
  FileSource: ["methods/loadModel.params.json", "FileSource"],
  DownloadProgress: ["notifications/download.progress.json", "DownloadProgress"],
  UnloadModelParams: ["methods/unloadModel.params.json", "UnloadModelParams"],
  UnloadModelResult: ["methods/unloadModel.result.json", "UnloadModelResult"],
  CancelParams: ["methods/cancel.params.json", "CancelParams"],
  CancelResult: ["methods/cancel.result.json", "CancelResult"],
  InitializeParams: ["methods/initialize.params.json", "InitializeParams"],
  InitializeResult: ["methods/initialize.result.json", "InitializeResult"],
  BackendInfo: ["methods/initialize.result.json", "BackendInfo"],
  Device: ["methods/initialize.result.json", "Device"],
  BackendChanged: ["notifications/backend.changed.json", "BackendChanged"],
  Limits: ["methods/initialize.result.json", "Limits"],
  ListModelsResult: ["methods/listModels.result.json", "ListModelsResult"],
  ListedModel: ["methods/listModels.result.json", "ListedModel"],
  ListedRequest: ["methods/listModels.result.json", "ListedRequest"],
  ModelTotals: ["methods/listModels.result.json", "ModelTotals"],
  LoraSpec: ["methods/diffusion.params.json", "LoraSpec"],
  UpscaleSpec: ["methods/diffusion.params.json", "UpscaleSpec"],
  HiresParams: ["methods/diffusion.params.json", "HiresParams"],
  UpscaleParams: ["methods/upscale.params.json", "UpscaleParams"],
  VideoParams: ["methods/video.params.json", "VideoParams"],
  VideoResult: ["methods/video.result.json", "VideoResult"],
  VideoStats: ["methods/video.result.json", "VideoStats"],
  VideoProgress: ["notifications/video.progress.json", "VideoProgress"],
  VideoPreview: ["notifications/video.preview.json", "VideoPreview"],
  UpscaleResult: ["methods/upscale.result.json", "UpscaleResult"],
  UpscaleStats: ["methods/upscale.result.json", "UpscaleStats"],
  UpscaleProgress: ["notifications/upscale.progress.json", "UpscaleProgress"],
  ConvertParams: ["methods/convert.params.json", "ConvertParams"],
  ConvertResult: ["methods/convert.result.json", "ConvertResult"],
  ConvertProgress: ["notifications/convert.progress.json", "ConvertProgress"],
};
// The client sends these itself and exposes no type for them: `shutdown` and `exit` take no
// params, and cancelling goes through `cancel()`, not the LSP notification.
const NOT_DECLARED = new Set(["NoParams", "CancelRequestParams"]);
const TS_NAME = Object.fromEntries(Object.entries(DECLARED).map(([ts, [, struct]]) => [struct, ts]));

function parseDeclarations(source) {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  const aliases = {};
  for (const [, name, body] of code.matchAll(/export type (\w+) =([^;]+);/g)) aliases[name] = body;
  const interfaces = {};
  for (const [, name, body] of code.matchAll(/export interface (\w+)(?: extends [\w, ]+)? \{([^}]*)\}/g)) {
    interfaces[name] = Object.fromEntries(
      [...body.matchAll(/^\s*(\w+)(\??):\s*([^;]+);/gm)].map(([, prop, optional, type]) => [
        prop,
        { optional: optional === "?", type },
      ]),
    );
  }
  return { aliases, interfaces };
}

const { aliases, interfaces } = parseDeclarations(readFileSync(path.join(PACKAGE_DIR, "index.d.ts"), "utf8"));

/** The members of a TypeScript union, with named aliases expanded, as a sorted list. */
function members(type) {
  return type
    .split("|")
    .map((member) => member.trim())
    .filter(Boolean)
    .flatMap((member) => (member in aliases ? members(aliases[member]) : [member]))
    .sort();
}

/** The TypeScript union a JSON Schema property stands for, as a sorted member list. */
function expected(schema) {
  if (schema.$ref) return [TS_NAME[schema.$ref.split("/").pop()] ?? `unmapped ${schema.$ref}`];
  if (schema.anyOf) return schema.anyOf.flatMap(expected).sort();
  if (schema.enum) return schema.enum.map((value) => JSON.stringify(value)).sort();
  if (schema.type === "array") return expected(schema.items).map((item) => `${item}[]`);
  if (schema.type === "object" && schema.additionalProperties) {
    return expected(schema.additionalProperties).map((value) => `Record<string, ${value}>`);
  }
  const scalar = { string: "string", integer: "number", number: "number", boolean: "boolean", null: "null" };
  assert.ok(schema.type in scalar, `no TypeScript type for ${JSON.stringify(schema)}`);
  return [scalar[schema.type]];
}

for (const [name, [file, struct]] of Object.entries(DECLARED)) {
  test(`${name} declares ${struct} of schemas/${file}`, () => {
    const schema = readJson(`schemas/${file}`).$defs[struct];
    const declared = interfaces[name];
    assert.ok(declared, `index.d.ts has no interface ${name}`);
    assert.deepEqual(Object.keys(declared).sort(), Object.keys(schema.properties).sort(), "property names");
    for (const [prop, propSchema] of Object.entries(schema.properties)) {
      const { optional, type } = declared[prop];
      assert.equal(optional, !schema.required.includes(prop), `${name}.${prop}: optional?`);
      assert.deepEqual(members(type), expected(propSchema), `${name}.${prop}: type`);
    }
  });
}

test("every Struct the protocol carries is declared", () => {
  const files = ["methods", "notifications"].flatMap((dir) =>
    readdirSync(path.join(REPO_DIR, "schemas", dir)).map((file) => `schemas/${dir}/${file}`),
  );
  const structs = new Set(files.flatMap((file) => Object.keys(readJson(file).$defs ?? {})));
  assert.ok(structs.has("DiffusionParams"));
  const undeclared = [...structs].filter((struct) => !(struct in TS_NAME) && !NOT_DECLARED.has(struct));
  assert.deepEqual(undeclared, []);
});

test("ErrorCode lists every data.code of schemas/error.json, and SIDECAR_EXITED", () => {
  const codes = readJson("schemas/error.json").properties.data.properties.code.enum;
  assert.deepEqual(members(aliases.ErrorCode), [...codes, "SIDECAR_EXITED"].map((c) => JSON.stringify(c)).sort());
});
