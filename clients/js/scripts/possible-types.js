// Prints Apollo's possibleTypes for ../../schema.graphql: `npm run possible-types > possibleTypes.json`.
import { possibleTypes } from "../src/possible-types.js";

process.stdout.write(`${JSON.stringify(possibleTypes(), null, 2)}\n`);
