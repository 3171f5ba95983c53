/**
 * image-generator-google@1: POST {GOOGLE_API_BASE_URL}/models/{model}:predict (default base
 * https://generativelanguage.googleapis.com/v1beta, model imagen-3.0-generate-002) with header
 * `x-goog-api-key: <secret GOOGLE_API_KEY>` and body {instances: [{prompt}], parameters:
 * {sampleCount}}; every `predictions[].bytesBase64Encoded` is saved as an asset of its `mimeType`
 * (default image/png), then one `image-set` deliverable refers to them all.
 *
 * Runs in the function runtime (see image-generator-openai@1 for what `ctx` offers).
 *
 * Errors: a non-2xx answer throws an Error naming the status and the API's error message (429
 * and 5xx say "retry later"); an answer without images throws.
 */
var DEFAULT_BASE_URL = 'https://generativelanguage.googleapis.com/v1beta';
var DEFAULT_MODEL = 'imagen-3.0-generate-002';
var EXTENSIONS = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp' };

function apiError(status, data) {
  var detail = data && data.error && data.error.message ? data.error.message : JSON.stringify(data || '').slice(0, 200);
  var transient = status === 429 || status >= 500;
  var error = new Error('Google Imagen answered HTTP ' + status + (transient ? ' (retry later)' : '') + ': ' + detail);
  error.status = status;
  error.retryable = transient;
  return error;
}

async function main(input, ctx) {
  var axios = ctx.require('axios');
  var baseUrl = String(ctx.env.GOOGLE_API_BASE_URL || DEFAULT_BASE_URL).replace(/\/+$/, '');
  var apiKey = ctx.secrets.GOOGLE_API_KEY;
  if (!apiKey) throw new Error('the secret GOOGLE_API_KEY is not set');
  var prompt = input.prompt;
  var model = input.model || DEFAULT_MODEL;
  var body = { instances: [{ prompt: prompt }], parameters: { sampleCount: input.n || 1 } };

  var response;
  try {
    response = await axios.post(baseUrl + '/models/' + encodeURIComponent(model) + ':predict', body, {
      headers: { 'x-goog-api-key': apiKey, 'Content-Type': 'application/json' },
      validateStatus: function () { return true; },
    });
  } catch (err) {
    if (err && err.response) response = err.response;
    else throw err;
  }
  if (response.status < 200 || response.status > 299) throw apiError(response.status, response.data);

  var predictions = response.data && Array.isArray(response.data.predictions) ? response.data.predictions : [];
  var images = predictions.filter(function (p) { return p && typeof p.bytesBase64Encoded === 'string' && p.bytesBase64Encoded !== ''; });
  if (images.length === 0) throw new Error('Google Imagen answered without predictions[].bytesBase64Encoded');

  var assetIds = [];
  for (var i = 0; i < images.length; i += 1) {
    var mimeType = images[i].mimeType || 'image/png';
    var name = 'google-' + (i + 1) + '.' + (EXTENSIONS[mimeType] || 'bin');
    var asset = await ctx.assets.saveBuffer(Buffer.from(images[i].bytesBase64Encoded, 'base64'), { name: name, mimeType: mimeType });
    assetIds.push(asset.id);
  }
  var deliverable = await ctx.deliverables.create({
    title: 'Images for: ' + (prompt.length > 80 ? prompt.slice(0, 80) + '…' : prompt),
    kind: 'image-set',
    content: { prompt: prompt, provider: 'google', model: model },
    assetIds: assetIds,
  });
  return { provider: 'google', prompt: prompt, assetIds: assetIds, deliverableId: deliverable.id };
}
