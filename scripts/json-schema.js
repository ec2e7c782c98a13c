/** `npm run schema`: writes routes.schema.json from the route table's zod schema (run after `npm run build`). */
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { routeTableJsonSchemaText } = require('../dist/src/config/jsonSchema.js');

writeFileSync(join(__dirname, '..', 'routes.schema.json'), routeTableJsonSchemaText());
process.stdout.write('routes.schema.json written\n');
