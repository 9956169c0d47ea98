// Apollo Client's `possibleTypes` (each interface and union with the object types that can stand for it),
// read from the exported schema.graphql, so a new run event type reaches the cache without a hand edit.
import { readFileSync } from "node:fs";
import path from "node:path";
import { buildSchema, isInterfaceType, isUnionType } from "graphql";
import { repoRoot } from "./server.js";

export const schemaPath = path.join(repoRoot, "schema.graphql");

export function loadSchema(file = schemaPath) {
  return buildSchema(readFileSync(file, "utf8"));
}

export function possibleTypes(schema = loadSchema()) {
  const result = {};
  for (const type of Object.values(schema.getTypeMap())) {
    if (type.name.startsWith("__")) continue;
    if (isInterfaceType(type) || isUnionType(type)) {
      result[type.name] = schema
        .getPossibleTypes(type)
        .map((member) => member.name)
        .sort();
    }
  }
  return result;
}
