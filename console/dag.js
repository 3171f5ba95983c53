// The run's DAG as SVG: a layered layout of our own (layer = longest path from a root), nodes
// coloured by status, edges from each `needs` entry.
import { html } from './html.js';

const W = 150;
const H = 40;
const GAP_X = 60;
const GAP_Y = 18;

/** Layer of every step: 0 for roots, else 1 + the deepest of its needs. */
function layers(steps) {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const depth = new Map();
  const visit = (id, seen) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const needs = (byId.get(id)?.needs || []).filter((n) => byId.has(n));
    const d = needs.length === 0 ? 0 : 1 + Math.max(...needs.map((n) => visit(n, seen)));
    depth.set(id, d);
    return d;
  };
  steps.forEach((s) => visit(s.id, new Set()));
  return depth;
}

export function Dag({ steps, selected, onSelect }) {
  const depth = layers(steps);
  const columns = [];
  for (const s of steps) {
    const d = depth.get(s.id) || 0;
    (columns[d] = columns[d] || []).push(s);
  }
  const pos = new Map();
  columns.forEach((col, x) => col.forEach((s, y) => pos.set(s.id, { x: 10 + x * (W + GAP_X), y: 10 + y * (H + GAP_Y) })));
  const width = 20 + columns.length * (W + GAP_X) - GAP_X;
  const height = 20 + Math.max(1, ...columns.map((c) => c.length)) * (H + GAP_Y) - GAP_Y;
  const edges = steps.flatMap((s) =>
    (s.needs || []).filter((n) => pos.has(n)).map((n) => {
      const a = pos.get(n);
      const b = pos.get(s.id);
      const x1 = a.x + W;
      const y1 = a.y + H / 2;
      const x2 = b.x;
      const y2 = b.y + H / 2;
      const mid = (x1 + x2) / 2;
      return html`<path class="edge" d=${`M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`} />`;
    }),
  );
  return html`<svg class="dag" width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`} role="img" aria-label="run graph">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" /></marker></defs>
    ${edges}
    ${steps.map((s) => {
      const p = pos.get(s.id);
      return html`<g class=${`node status-${s.status}${selected === s.id ? ' selected' : ''}`} data-step=${s.id} transform=${`translate(${p.x},${p.y})`} onClick=${() => onSelect(s.id)}>
        <rect width=${W} height=${H} rx="6" />
        <text x="10" y="17">${s.id}</text>
        <text class="sub" x="10" y="32">${s.type} · ${s.status}</text>
      </g>`;
    })}
  </svg>`;
}
