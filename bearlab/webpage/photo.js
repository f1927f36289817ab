// What a file is before the browser decodes it: its format, its size in pixels, whether it is cut off. Read from the
// first bytes, as Pillow does, so that the page refuses what bearlab.images.open_image refuses, with the same words.

const ascii = (b, i, n) => String.fromCharCode(...b.subarray(i, i + n));
const u16 = (b, i) => (b[i] << 8) | b[i + 1];
const u32 = (b, i) => ((b[i] << 24) >>> 0) + (b[i + 1] << 16) + (b[i + 2] << 8) + b[i + 3];
const le16 = (b, i) => b[i] | (b[i + 1] << 8);
const le32 = (b, i) => (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)) + b[i + 3] * 2 ** 24;

// HEIF brands (iPhones write heic); AVIF is HEIF with AV1 inside
const HEIF_BRANDS = ['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs', 'mif1', 'msf1'];

/** The EXIF orientation (1 to 8) in a JPEG's APP1 segment at `i`; 1 if it says none. */
function orientation(b, i) {
  const t = i + 10, le = ascii(b, t, 2) === 'II'; // the TIFF header after 'Exif\0\0'
  const r16 = (j) => (le ? le16(b, j) : u16(b, j)), r32 = (j) => (le ? le32(b, j) : u32(b, j));
  const ifd = t + r32(t + 4);
  for (let k = 0, n = r16(ifd); k < n && ifd + 14 + 12 * k <= b.length; k++) {
    const e = ifd + 2 + 12 * k;
    if (r16(e) === 0x0112) return r16(e + 8);
  }
  return 1;
}

/** A JPEG's size from its frame header, whether it is an MPO (Pillow calls it so and doesn't draft it), and
 *  whether its image data ends (an end-of-image marker after the first scan). */
function jpeg(b) {
  let i = 2, width = 0, height = 0, mpo = false, scan = -1, turn = 1;
  while (i + 4 <= b.length && b[i] === 0xff) {
    const m = b[i + 1];
    if (m === 0xff) { i++; continue; } // fill byte
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) { i += 2; continue; }
    if (m === 0xda) { scan = i; break; }
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) { height = u16(b, i + 5); width = u16(b, i + 7); }
    if (m === 0xe2 && ascii(b, i + 4, 4) === 'MPF\0') mpo = true;
    if (m === 0xe1 && ascii(b, i + 4, 6) === 'Exif\0\0' && turn === 1) turn = orientation(b, i);
    i += 2 + u16(b, i + 2);
  }
  let end = b.length - 2;
  while (end > scan && !(b[end] === 0xff && b[end + 1] === 0xd9)) end--;
  return { format: mpo ? 'MPO' : 'JPEG', width, height, truncated: scan < 0 || end <= scan, orientation: turn };
}

/** The largest image size a HEIF/AVIF file declares (its `ispe` boxes), from its first 256 kB. */
function ispe(b) {
  let width = 0, height = 0;
  for (let i = 4, n = Math.min(b.length - 16, 1 << 18); i < n; i++) {
    if (b[i] !== 0x69 || ascii(b, i, 4) !== 'ispe') continue;
    const w = u32(b, i + 8), h = u32(b, i + 12);
    if (w * h > width * height) { width = w; height = h; }
  }
  return { width, height };
}

/** Format (Pillow's name), width, height (as stored) and `truncated` for a photo's bytes, and a JPEG's EXIF
 *  `orientation`; `format` is null if unknown. */
export function inspect(b) {
  const none = { format: null, width: 0, height: 0, truncated: false, orientation: 1 };
  if (b.length < 12) return none;
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return jpeg(b);
  if (ascii(b, 0, 8) === '\x89PNG\r\n\x1a\n') {
    let end = b.length - 4; // IEND ends every PNG
    while (end > 8 && !(b[end] === 0x49 && ascii(b, end, 4) === 'IEND')) end--;
    return { format: 'PNG', width: u32(b, 16), height: u32(b, 20), truncated: end <= 8 };
  }
  if (ascii(b, 0, 4) === 'GIF8') return { ...none, format: 'GIF', width: le16(b, 6), height: le16(b, 8) };
  if (ascii(b, 0, 2) === 'BM') return { ...none, format: 'BMP', width: le32(b, 18), height: Math.abs(le32(b, 22) | 0) };
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') {
    const kind = ascii(b, 12, 4);
    const u24 = (i) => 1 + (le32(b, i) & 0xffffff);
    if (kind === 'VP8X') return { ...none, format: 'WEBP', width: u24(24), height: u24(27) };
    if (kind === 'VP8L') {
      const v = le32(b, 21);
      return { ...none, format: 'WEBP', width: 1 + (v & 0x3fff), height: 1 + ((v >>> 14) & 0x3fff) };
    }
    return { ...none, format: 'WEBP', width: le16(b, 26) & 0x3fff, height: le16(b, 28) & 0x3fff };
  }
  if (ascii(b, 0, 4) === 'II*\0' || ascii(b, 0, 4) === 'MM\0*') return { ...none, format: 'TIFF' };
  if (ascii(b, 4, 4) === 'ftyp') {
    const brands = [];
    for (let i = 8; i + 4 <= Math.min(b.length, 8 + u32(b, 0) - 4); i += 4) brands.push(ascii(b, i, 4));
    const format = brands.some((x) => x === 'avif' || x === 'avis') ? 'AVIF'
      : brands.some((x) => HEIF_BRANDS.includes(x)) ? 'HEIF' : null;
    if (format) return { ...none, format, ...ispe(b) };
  }
  return none;
}

/** A short guess at what bytes that are not a photo are: bearlab.images.describe_bytes. */
export function describeBytes(b) {
  const start = b.subarray(0, 512);
  const text = new TextDecoder('latin1').decode(start).trimStart().toLowerCase();
  if (text.startsWith('<!doctype html') || text.startsWith('<html') || text.includes('<html')) return 'a web page (HTML)';
  if (text.startsWith('{') || text.startsWith('[')) return 'JSON text';
  if (text.startsWith('%pdf')) return 'a PDF document';
  if (text.startsWith('pk\x03\x04')) return 'a zip archive';
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(start);
    return 'text';
  } catch { return 'binary data of an unknown kind'; }
}

// bearlab.images.format_ext: the usual extension for Pillow's format name
const EXT = { JPEG: 'jpg', MPO: 'jpg', HEIF: 'heic', TIFF: 'tif' };
export const formatExt = (format) => EXT[format] || (format || 'bin').toLowerCase();
