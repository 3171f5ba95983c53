/**
 * image-generator-openai@1: POST {OPENAI_BASE_URL}/images/generations (default
 * https://api.openai.com/v1) with `Authorization: Bearer <secret OPENAI_API_KEY>` and body
 * {model, prompt, n, size, response_format: 'b64_json'}; every `data[].b64_json` is saved as a PNG
 * asset, then one `image-set` deliverable refers to them all.
 *
 * Runs in the function runtime: `ctx.require('axios')`, the global `Buffer`, `ctx.env`,
 * `ctx.secrets` (reading an unset declared secret throws MissingSecretError), `ctx.assets`,
 * `ctx.deliverables`. Self-contained: no other imports.
 *
 * Errors: a non-2xx answer throws an Error naming the status and the API's error message (429
 * and 5xx say "retry later"); an answer without images throws.
 */
var DEFAULT_BASE_URL = 'https://api.openai.com/v1';
var DEFAULT_MODEL = 'gpt-image-1';
var DEFAULT_SIZE = '1024x1024';

function apiError(status, data) {
  var detail = data && data.error && data.error.message ? data.error.message : JSON.stringify(data || '').slice(0, 200);
  var transient = status === 429 || status >= 500;
  var error = new Error('OpenAI images answered HTTP ' + status + (transient ? ' (retry later)' : '') + ': ' + detail);
  error.status = status;
  error.retryable = transient;
  return error;
}

async function main(input, ctx) {
  var axios = ctx.require('axios');
  var baseUrl = String(ctx.env.OPENAI_BASE_URL || DEFAULT_BASE_URL).replace(/\/+$/, '');
  var apiKey = ctx.secrets.OPENAI_API_KEY;
  if (!apiKey) throw new Error('the secret OPENAI_API_KEY is not set');
  var prompt = input.prompt;
  var n = input.n || 1;
  var body = { model: input.model || DEFAULT_MODEL, prompt: prompt, n: n, size: input.size || DEFAULT_SIZE, response_format: 'b64_json' };

  var response;
  try {
    response = await axios.post(baseUrl + '/images/generations', body, {
      headers: { Authorization: 'Bearer ' + apiKey, 'Content-Type': 'application/json', 'Idempotency-Key': ctx.idempotencyKey },
      validateStatus: function () { return true; },
    });
  } catch (err) {
    if (err && err.response) response = err.response;
    else throw err;
  }
  if (response.status < 200 || response.status > 299) throw apiError(response.status, response.data);

  var images = response.data && Array.isArray(response.data.data) ? response.data.data : [];
  var encoded = images.map(function (image) { return image && image.b64_json; }).filter(function (b64) { return typeof b64 === 'string' && b64 !== ''; });
  if (encoded.length === 0) throw new Error('OpenAI images answered without data[].b64_json');

  var assetIds = [];
  for (var i = 0; i < encoded.length; i += 1) {
    var asset = await ctx.assets.saveBuffer(Buffer.from(encoded[i], 'base64'), { name: 'openai-' + (i + 1) + '.png', mimeType: 'image/png' });
    assetIds.push(asset.id);
  }
  var deliverable = await ctx.deliverables.create({
    title: 'Images for: ' + (prompt.length > 80 ? prompt.slice(0, 80) + '…' : prompt),
    kind: 'image-set',
    content: { prompt: prompt, provider: 'openai', model: body.model, size: body.size },
    assetIds: assetIds,
  });
  return { provider: 'openai', prompt: prompt, assetIds: assetIds, deliverableId: deliverable.id };
}
