import { readFileSync, readdirSync } from 'node:fs';
import { parseDefinition } from './index.js';
const agents = new Map([['postgres-agent','tool'],['kpi-calculator','function'],['summarizer','context'],['marketing-swarm','api']] as const);
for (const f of readdirSync('definitions/__fixtures__').sort()) {
  const file = `definitions/__fixtures__/${f}`;
  try { parseDefinition(readFileSync(file, 'utf8'), { file, agents }); console.log('NO ERROR', f); }
  catch (e) { console.log((e as Error).message); }
}
