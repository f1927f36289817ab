// bearlab's `Preprocess` in the browser, pixel for pixel: the same box arithmetic as bearlab.inference, and Pillow's
// bilinear resize (src/libImaging/Resample.c) in integer arithmetic, so that a photo becomes the very same model input.
// An image here is {width, height, data}: data is RGBA, 4 bytes a pixel, as canvases and ImageData hold it.

const BITS = 22; // Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2

// Pillow reads a box as 32-bit floats
const f32 = Math.fround;

/** The region of a w×h photo that becomes the model's input: bearlab.inference.fit_box. */
export function fitBox(w, h, [sh, sw], method = 'crop', cropPct = 1) {
  let bw = w, bh = h;
  if (method !== 'squish') {
    const m = (method === 'crop' ? Math.min : Math.max)(w / sw, h / sh);
    bw = Math.trunc(m * sw); bh = Math.trunc(m * sh);
  }
  if (cropPct === 1 && method !== 'squish') { // whole pixels, as fastai's Resize
    const l = Math.trunc((w - bw) / 2), t = Math.trunc((h - bh) / 2);
    return [l, t, l + bw, t + bh];
  }
  bw *= cropPct; bh *= cropPct;
  const l = (w - bw) / 2, t = (h - bh) / 2;
  return [l, t, l + bw, t + bh];
}

/** Pillow's coefficients for one axis: for each output pixel, the first input pixel, how many, and 22-bit weights. */
function coeffs(inSize, in0, in1, outSize) {
  in0 = f32(in0); in1 = f32(in1);
  const scale = f32(in1 - in0) / outSize, filterscale = Math.max(scale, 1);
  const support = filterscale, ksize = Math.ceil(support) * 2 + 1; // bilinear: support 1, scaled when shrinking
  const bounds = new Int32Array(outSize * 2), kk = new Int32Array(outSize * ksize), w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const n = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < n; x++) {
      const d = Math.abs((x + xmin - center + 0.5) / filterscale);
      w[x] = d < 1 ? 1 - d : 0;
      ww += w[x];
    }
    for (let x = 0; x < n; x++) {
      const k = ww !== 0 ? w[x] / ww : w[x];
      kk[xx * ksize + x] = Math.trunc(k < 0 ? k * (1 << BITS) - 0.5 : k * (1 << BITS) + 0.5);
    }
    bounds[2 * xx] = xmin; bounds[2 * xx + 1] = n;
  }
  return { bounds, kk, ksize };
}

const clip8 = (s) => { const v = s >> BITS; return v < 0 ? 0 : v > 255 ? 255 : v; };

/** One pass of Pillow's resize: `lines` lines of `nOut` pixels, each a weighted sum along the line (`step` apart). */
function pass(src, srcOff, lineIn, step, out, lineOut, outStep, { bounds, kk, ksize }, nOut, lines) {
  const o = out.data, s = src.data, half = 1 << (BITS - 1);
  for (let i = 0; i < lines; i++) {
    for (let xx = 0; xx < nOut; xx++) {
      const xmin = bounds[2 * xx], n = bounds[2 * xx + 1], k = xx * ksize;
      let r = half, g = half, b = half, p = srcOff + i * lineIn + xmin * step;
      for (let x = 0; x < n; x++, p += step) {
        const c = kk[k + x];
        r += s[p] * c; g += s[p + 1] * c; b += s[p + 2] * c;
      }
      const q = i * lineOut + xx * outStep;
      o[q] = clip8(r); o[q + 1] = clip8(g); o[q + 2] = clip8(b); o[q + 3] = 255;
    }
  }
}

const blank = (width, height) => ({ width, height, data: new Uint8ClampedArray(width * height * 4) });

function horizontal(img, c, first, rows, w) {
  const out = blank(w, rows);
  pass(img, first * img.width * 4, img.width * 4, 4, out, w * 4, 4, c, w, rows);
  return out;
}

function vertical(img, c, first, cols, h) {
  const out = blank(cols, h);
  pass(img, first * 4, 4, img.width * 4, out, 4, cols * 4, c, h, cols);
  return out;
}

/** Whether Pillow runs the horizontal pass first (Pillow 13's rule; older Pillows always do). */
export const horizontalFirst = (W, H, w, h) => !(H - h > 0 && H - h > (W - w) * 2);

function shifted(c, by) {
  const bounds = c.bounds.slice();
  for (let i = 0; i < bounds.length; i += 2) bounds[i] -= by;
  return { ...c, bounds };
}

/** Pillow's `img.resize((w, h), Image.BILINEAR, box=box)` of an RGB image, pixel for pixel. */
export function resize(img, w, h, box = [0, 0, img.width, img.height]) {
  const [l, t, r, b] = box.map(f32);
  const needH = w !== img.width || l !== 0 || r !== w, needV = h !== img.height || t !== 0 || b !== h;
  const cx = coeffs(img.width, l, r, w), cy = coeffs(img.height, t, b, h);
  if (!needH && !needV) return { width: w, height: h, data: img.data.slice() };
  if (!needV) return horizontal(img, cx, 0, img.height, w);
  if (!needH) return vertical(img, cy, 0, img.width, h);
  if (horizontalFirst(img.width, img.height, w, h)) {
    const y0 = cy.bounds[0], y1 = cy.bounds[2 * h - 2] + cy.bounds[2 * h - 1];
    return vertical(horizontal(img, cx, y0, y1 - y0, w), shifted(cy, y0), 0, w, h);
  }
  const x0 = cx.bounds[0], x1 = cx.bounds[2 * w - 2] + cx.bounds[2 * w - 1];
  return horizontal(vertical(img, cy, x0, x1 - x0, h), shifted(cx, x0), 0, h, w);
}

/** The w×h window of `img` at (x, y), where pixels outside come from `at(i, n)` (an index inside 0…n-1, or -1: black). */
function window(img, x, y, w, h, at = (i) => i) {
  const out = blank(w, h), s = img.data, o = out.data;
  for (let j = 0; j < h; j++) {
    const sy = at(y + j, img.height);
    for (let i = 0; i < w; i++) {
      const sx = at(x + i, img.width), q = (j * w + i) * 4;
      if (sx < 0 || sy < 0) { o[q + 3] = 255; continue; }
      const p = (sy * img.width + sx) * 4;
      o[q] = s[p]; o[q + 1] = s[p + 1]; o[q + 2] = s[p + 2]; o[q + 3] = 255;
    }
  }
  return out;
}

// numpy.pad's modes, as an index into 0…n-1 (or -1 for a zero)
const PADS = {
  zeros: (i, n) => (i < 0 || i >= n ? -1 : i),
  border: (i, n) => Math.min(n - 1, Math.max(0, i)),
  reflection: (i, n) => {
    if (n === 1) return 0;
    const p = 2 * (n - 1), m = ((i % p) + p) % p;
    return m < n ? m : p - m;
  },
};

/** The image to resize and its box: `Preprocess._source` (padding, whole-pixel crops, RandomResizedCrop's squish). */
export function source(img, pre) {
  const [h, w] = pre.size;
  if (pre.method === 'squish' && pre.crop_pct < 1) { // bearlab.inference._squish_source
    const big = Math.round(Math.max(h, w) / pre.crop_pct), H = h + big - Math.max(h, w), W = w + big - Math.max(h, w);
    const t = Math.floor((H - h) / 2), l = Math.floor((W - w) / 2);
    if ((W & (W - 1)) || (H & (H - 1))) return [resize(img, W, H), [l, t, l + w, t + h]];
    const sx = img.width / W, sy = img.height / H;
    return [img, [l * sx, t * sy, (l + w) * sx, (t + h) * sy]];
  }
  let box = fitBox(img.width, img.height, pre.size, pre.method, pre.crop_pct);
  if (pre.method === 'pad') {
    const [l, t, r, b] = box;
    const pl = Math.max(0, Math.ceil(-l)), pt = Math.max(0, Math.ceil(-t));
    const pr = Math.max(0, Math.ceil(r - img.width)), pb = Math.max(0, Math.ceil(b - img.height));
    if (pl || pt || pr || pb) {
      img = window(img, -pl, -pt, img.width + pl + pr, img.height + pt + pb, PADS[pre.pad_mode]);
      box = [l + pl, t + pt, r + pl, b + pt];
    }
  }
  if (box.every(Number.isInteger)) { // as fastai: cut out whole pixels, then resize all of them
    const [l, t, r, b] = box;
    const inside = l >= 0 && t >= 0 && r <= img.width && b <= img.height;
    img = window(img, l, t, r - l, b - t, inside ? undefined : PADS.zeros);
    box = [0, 0, img.width, img.height];
  }
  return [img, box];
}

/** The model's input for an RGB image: 3×H×W float32, resized and normalized as `Preprocess.array`. */
export function modelInput(img, pre) {
  const [h, w] = pre.size, [src, box] = source(img, pre);
  const small = resize(src, w, h, box), x = new Float32Array(3 * h * w), d = small.data;
  for (let c = 0; c < 3; c++) {
    // (a/255 - mean)/std as numpy computes it in float32: a multiply, then an add
    const std = f32(pre.std[c]), scale = f32(1 / f32(255 * std)), offset = f32(-f32(pre.mean[c]) / std);
    for (let i = 0, o = c * h * w; i < h * w; i++) x[o + i] = f32(d[4 * i + c] * scale) + offset;
  }
  return x;
}

/** How much Pillow's JPEG `draft` shrinks a W×H photo so that both sides stay at least `min`: 1, 2, 4 or 8. */
export function draftScale(W, H, min) {
  const scale = Math.min(Math.floor(W / min), Math.floor(H / min));
  return [8, 4, 2].find((s) => scale >= s) || 1;
}

/** An RGBA image made opaque over white, as bearlab.images.to_rgb (Pillow's alpha_composite, in 7-bit fixed point). */
export function overWhite(img) {
  const d = img.data;
  for (let p = 0; p < d.length; p += 4) {
    const a = d[p + 3];
    if (a === 255) continue;
    if (a === 0) { d[p] = d[p + 1] = d[p + 2] = d[p + 3] = 255; continue; }
    const c1 = a * 128, c2 = 255 * 128 - c1; // over opaque white, Pillow's coefficients reduce to these
    for (let c = 0; c < 3; c++) {
      const t = d[p + c] * c1 + 255 * c2 + (0x80 << 7);
      d[p + c] = (((t >> 8) + t) >> 8) >> 7;
    }
    d[p + 3] = 255;
  }
  return img;
}
