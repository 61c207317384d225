// Validates JSON files against a JSON Schema (draft 2020-12) with Ajv, formats included
// (ajv-formats), in strict mode (a schema keyword Ajv does not know is an error too).
//
//   node validate.mjs SCHEMA.json FILE.json...
//
// Prints one line {"result": {"files": {FILE: {"valid": bool, "errors": [...]}}}} and
// exits 0; the Rust test decides what fails. A schema that does not compile exits 2.

import { readFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const [schemaFile, ...files] = process.argv.slice(2);
const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
let validate;
try {
  validate = ajv.compile(JSON.parse(readFileSync(schemaFile, 'utf8')));
} catch (e) {
  process.stderr.write(`schema ${schemaFile} does not compile: ${e}\n`);
  process.exit(2);
}
const result = { files: {} };
for (const f of files) {
  const valid = validate(JSON.parse(readFileSync(f, 'utf8')));
  result.files[f] = { valid, errors: (validate.errors || []).slice(0, 20) };
}
process.stdout.write(JSON.stringify({ result }) + '\n');
