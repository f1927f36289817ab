// The page's second thread: it loads the model, decodes each photo, prepares it as bearlab does and asks the model,
// so that a 50 MB photo never freezes the page. It talks to app.js in messages: {type, id, ...}.
import * as ort from './ort/ort.wasm.bundle.min.mjs';
import { modelInput, draftScale, overWhite } from './preprocess.js';
import { inspect, describeBytes, formatExt } from './photo.js';
import { readLogits } from './predict.js';

let config = null, session = null;
const PREVIEW = 384; // longest side of the photo shown back, as the Voila app's
const CANVAS_MAX = 16_777_216; // Safari's largest canvas, in pixels: bigger photos are decoded smaller

/** An error whose message is written for the person choosing the photo (bearlab.images.ImageError). */
class PhotoError extends Error {}

/** `url`'s bytes, saying how many have arrived. */
async function download(url, total) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  const parts = [], reader = r.body.getReader();
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value); loaded += value.length;
    postMessage({ type: 'loading', loaded, total });
  }
  const out = new Uint8Array(loaded);
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

async function load(cfg) {
  config = cfg;
  // only the WebAssembly file's address: the bundle's own copy of its JavaScript glue is used (one file fewer)
  ort.env.wasm.wasmPaths = { wasm: new URL('ort/ort-wasm-simd-threaded.wasm', self.location.href).href };
  // threads need a cross-origin isolated page (COOP and COEP headers): static hosts such as GitHub Pages can't send them
  // (where it is, ONNX Runtime's default is half the cores, at most 4; `?threads=N` in the page's address says N)
  ort.env.wasm.numThreads = self.crossOriginIsolated ? cfg.threads || undefined : 1;
  const model = await download(cfg.model.file, cfg.model.bytes);
  session = await ort.InferenceSession.create(model, {
    executionProviders: ['wasm'], graphOptimizationLevel: 'all', freeDimensionOverrides: { batch: 1 },
    extra: { session: { disable_quant_qdq: '1' } }, // an INT8 model's weights become float once, at load: float speed
  });
  const [h, w] = cfg.preprocess.size; // a first run sets ONNX Runtime up: the first photo is then as quick as the next
  await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', new Float32Array(3 * h * w), [1, 3, h, w]) });
  postMessage({ type: 'ready', threads: ort.env.wasm.numThreads });
}

/** Refuse what bearlab.images.open_image refuses, in its words, before decoding anything. */
function check(bytes, info) {
  const { max_pixels: max, browser_formats: formats } = config;
  if (!bytes.length) throw new PhotoError(`The file is empty (0 bytes). Choose a photo file: ${formats}.`);
  if (info.width * info.height > max) {
    const mp = ((info.width * info.height) / 1e6).toFixed(0);
    throw new PhotoError(`This image is too large (${info.width}×${info.height} = ${mp} megapixels): the limit is `
      + `${(max / 1e6).toFixed(0)} megapixels. Resize it and try again.`);
  }
  if (info.truncated) {
    throw new PhotoError('This image is cut off part-way (the file is incomplete, perhaps an unfinished download). '
      + 'Download or copy it again.');
  }
}

/** Why the browser couldn't decode a photo, in words. */
function undecodable(bytes, info, e) {
  const formats = config.browser_formats;
  if (info.format === 'HEIF' || info.format === 'AVIF' || info.format === 'TIFF') {
    const name = info.format === 'HEIF' ? 'HEIC' : info.format;
    return new PhotoError(`This is a ${name} photo, which this browser can't read. Open this page in Safari, which `
      + `reads it, or choose a JPEG instead (an iPhone takes JPEGs with Settings › Camera › Formats › `
      + `Most Compatible; chosen from the photo library, it converts them itself).`);
  }
  if (info.format) {
    return new PhotoError(`This image file is damaged and can't be decoded (${e.message || e}). Try another photo.`);
  }
  return new PhotoError(`This file is not a photo bearlab can read: it looks like ${describeBytes(bytes)}. `
    + `Choose a ${formats} image.`);
}

/** The photo's pixels, RGBA, the right way up. A big JPEG is decoded smaller, as Pillow's `draft` decodes it (by 2, 4
 *  or 8, both sides kept at least `config.draft`): by the JPEG decoder itself where WebCodecs' ImageDecoder lets us
 *  ask (Pillow's very pixels, faster, in less memory), else by the browser's resize ('medium' came closest to Pillow
 *  among its qualities, within a level or two). Other photos are decoded whole, unless a canvas can't hold them. */
async function pixels(file, bytes, info) {
  const big = info.width * info.height > CANVAS_MAX;
  const s = info.format === 'JPEG' || big ? draftScale(info.width, info.height, config.draft) : 1;
  const [w, h] = info.orientation >= 5 ? [info.height, info.width] : [info.width, info.height]; // turned a quarter
  const opts = { imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none' };
  // other formats may be turned in ways photo.js doesn't read (HEIF's irot): the width alone keeps their shape
  if (s > 1) Object.assign(opts, { resizeWidth: Math.ceil(w / s), resizeQuality: 'medium' },
    info.format === 'JPEG' ? { resizeHeight: Math.ceil(h / s) } : {});
  let bitmap;
  try {
    const decoded = s > 1 && info.format === 'JPEG' && self.ImageDecoder ? scaled(bytes, opts) : Promise.reject();
    bitmap = await decoded.catch(() => createImageBitmap(file, opts));
  } catch (e) { throw undecodable(bytes, info, e); }
  const g = new OffscreenCanvas(bitmap.width, bitmap.height).getContext('2d', { willReadFrequently: true });
  g.drawImage(bitmap, 0, 0);
  const { width, height, data } = g.getImageData(0, 0, bitmap.width, bitmap.height);
  return [overWhite({ width, height, data }), bitmap]; // bearlab.images.to_rgb: transparency over white
}

/** A JPEG decoded at the reduced size asked for by the JPEG decoder itself (its scaled IDCT, as Pillow's `draft`). */
async function scaled(bytes, { resizeWidth: desiredWidth, resizeHeight: desiredHeight }) {
  const d = new ImageDecoder({ data: bytes, type: 'image/jpeg', desiredWidth, desiredHeight, colorSpaceConversion: 'none' });
  try {
    const { image } = await d.decode();
    const c = new OffscreenCanvas(image.displayWidth, image.displayHeight);
    c.getContext('2d').drawImage(image, 0, 0, c.width, c.height); // turned as its EXIF says
    image.close();
    return c.transferToImageBitmap();
  } finally { d.close(); }
}

/** A small JPEG of the photo, to show back. */
async function preview(bitmap) {
  const s = Math.min(1, PREVIEW / Math.max(bitmap.width, bitmap.height));
  const c = new OffscreenCanvas(Math.max(1, Math.round(bitmap.width * s)), Math.max(1, Math.round(bitmap.height * s)));
  const g = c.getContext('2d');
  g.imageSmoothingQuality = 'high';
  g.fillStyle = 'white';
  g.fillRect(0, 0, c.width, c.height);
  g.drawImage(bitmap, 0, 0, c.width, c.height);
  bitmap.close();
  return c.convertToBlob({ type: 'image/jpeg', quality: 0.85 });
}

async function classify(id, file) {
  const step = (text) => postMessage({ type: 'step', id, text });
  step(`Reading ${file.name}…`);
  const bytes = new Uint8Array(await file.arrayBuffer()), info = inspect(bytes);
  check(bytes, info);
  const [img, bitmap] = await pixels(file, bytes, info);
  step('Asking the model…');
  const [h, w] = config.preprocess.size, x = modelInput(img, config.preprocess);
  const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [1, 3, h, w]) });
  const pred = readLogits(out[session.outputNames[0]].data, config), size = [bitmap.width, bitmap.height];
  postMessage({ type: 'answer', id, pred, preview: await preview(bitmap), ext: formatExt(info.format), size });
}

onmessage = async ({ data }) => {
  try {
    if (data.type === 'load') await load(data.config);
    else if (data.type === 'classify') await classify(data.id, data.file);
  } catch (e) {
    const mine = e instanceof PhotoError;
    if (!mine) console.error(e);
    postMessage({ type: 'failed', id: data.id, during: data.type, text: mine ? e.message : null,
                  error: `${e.name || 'Error'}: ${e.message || e}` });
  }
};
