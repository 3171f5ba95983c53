// A form generated from a JSON Schema (the checkpoint's `modify`): objects become fieldsets,
// strings text inputs (or a select for `enum`, a textarea for long text), numbers and integers
// number inputs, booleans checkboxes; anything else is edited as JSON.
import { useState } from 'preact/hooks';
import { html } from './html.js';

/** The initial value for `schema`: `seed` when it has the right type, else the schema's default. */
export function initialValue(schema, seed) {
  if (!schema || typeof schema !== 'object') return seed;
  if (schema.type === 'object' && schema.properties) {
    const base = seed && typeof seed === 'object' && !Array.isArray(seed) ? seed : {};
    const out = {};
    for (const [key, sub] of Object.entries(schema.properties)) {
      const v = initialValue(sub, base[key]);
      if (v !== undefined) out[key] = v;
    }
    return out;
  }
  if (seed !== undefined && seed !== null) return seed;
  return schema.default;
}

function typeOf(schema) {
  return Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
}

/** One field for `schema` at `path`, editing `value` through `onChange(newValue)`. */
export function SchemaField({ schema, name, path, value, onChange, required }) {
  const label = schema.title || name;
  const id = `f-${path.join('-') || 'root'}`;
  const type = typeOf(schema);
  const help = schema.description ? html`<small class="muted">${schema.description}</small>` : null;
  if (type === 'object' && schema.properties) {
    const obj = value && typeof value === 'object' ? value : {};
    const req = new Set(schema.required || []);
    return html`<fieldset>
      ${name ? html`<legend>${label}</legend>` : null}
      ${Object.entries(schema.properties).map(
        ([key, sub]) => html`<${SchemaField} schema=${sub} name=${key} path=${[...path, key]} value=${obj[key]} required=${req.has(key)}
          onChange=${(v) => {
            const next = { ...obj };
            if (v === undefined) delete next[key];
            else next[key] = v;
            onChange(next);
          }} />`,
      )}
    </fieldset>`;
  }
  let input;
  if (Array.isArray(schema.enum)) {
    input = html`<select id=${id} name=${path.join('.')} onChange=${(e) => onChange(schema.enum[Number(e.target.value)])}>
      ${required ? null : html`<option value="">—</option>`}
      ${schema.enum.map((opt, i) => html`<option value=${i} selected=${opt === value}>${String(opt)}</option>`)}
    </select>`;
  } else if (type === 'boolean') {
    input = html`<input id=${id} name=${path.join('.')} type="checkbox" checked=${value === true} onChange=${(e) => onChange(e.target.checked)} />`;
  } else if (type === 'number' || type === 'integer') {
    input = html`<input id=${id} name=${path.join('.')} type="number" step=${type === 'integer' ? 1 : 'any'} min=${schema.minimum} max=${schema.maximum}
      value=${value ?? ''} onInput=${(e) => onChange(e.target.value === '' ? undefined : Number(e.target.value))} />`;
  } else if (type === 'string') {
    const long = (schema.maxLength || 0) > 200 || String(value ?? '').length > 80;
    input = long
      ? html`<textarea id=${id} name=${path.join('.')} rows="4" onInput=${(e) => onChange(e.target.value)}>${value ?? ''}</textarea>`
      : html`<input id=${id} name=${path.join('.')} type="text" value=${value ?? ''} onInput=${(e) => onChange(e.target.value)} />`;
  } else {
    input = html`<${JsonField} id=${id} name=${path.join('.')} value=${value} onChange=${onChange} />`;
  }
  return html`<label class="field" for=${id}><span>${label}${required ? ' *' : ''}</span>${input}${help}</label>`;
}

/**
 * A JSON textarea: the text is the user's; each edit that parses is passed on, one that does not
 * is flagged invalid and not passed on.
 */
export function JsonField({ id, name, value, onChange, rows = 6 }) {
  const [text, setText] = useState(() => (value === undefined ? '' : JSON.stringify(value, null, 2)));
  return html`<textarea id=${id} name=${name} class="json" rows=${rows} value=${text}
    onInput=${(e) => {
      setText(e.target.value);
      try {
        onChange(e.target.value.trim() === '' ? undefined : JSON.parse(e.target.value));
        e.target.setCustomValidity('');
      } catch {
        e.target.setCustomValidity('not valid JSON');
      }
    }}></textarea>`;
}
