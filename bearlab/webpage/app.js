// The page: choose or take a photo, see which bear it is. The model runs in worker.js, on this device: photos never
// leave it. Words and layout follow the Voila app (bearlab.app); flags are kept in this browser (flags.js).
import { headline, percent } from './predict.js';
import { keepFlag, countFlags, flagsZip, forgetFlags } from './flags.js';

const NOT_A_BEAR = 'not a bear';
const $ = (sel) => document.querySelector(sel);
const app = $('.bearlab-app'), input = $('.bearlab-file'), bar = $('.bearlab-progress'), status = $('.bearlab-status');
const error = $('.bearlab-error'), answer = $('.bearlab-answer'), bars = $('.bearlab-bars'), photo = $('.bearlab-preview');
const mb = (n) => (n / 1e6).toFixed(1) + ' MB';
let config, worker, asked = 0, last = null, current = null; // current: the photo being classified

/** Say what is happening: `frac` a number for a bar, undefined for a busy bar, null for none. */
function show(text, frac = null) {
  status.textContent = text;
  bar.hidden = frac === null;
  if (typeof frac === 'number') bar.value = frac; else bar.removeAttribute('value');
}

function clear() {
  error.hidden = photo.hidden = $('.bearlab-feedback').hidden = true;
  answer.replaceChildren(); bars.replaceChildren();
  delete answer.dataset.label;
  delete answer.dataset.probs;
  last = null;
}

/** The page's state, for people (the picker) and for tests (`data-state`, `data-done` counts finished photos). */
function state(s) {
  app.dataset.state = s;
  input.disabled = $('.bearlab-camera').disabled = !['ready', 'done', 'failed'].includes(s);
  $('.bearlab-pick').classList.toggle('busy', input.disabled);
  if (s === 'done' || s === 'failed') app.dataset.done = String(+(app.dataset.done || 0) + 1);
}

function showError(text) {
  clear();
  error.textContent = text;
  error.hidden = false;
  show('');
  state('failed');
}

/** One bar per class, as the Voila app's `prob_bars`. */
function probBars(pred) {
  bars.replaceChildren(...pred.probs.map(([label, p]) => {
    const row = document.createElement('div'), name = document.createElement('span');
    const track = document.createElement('span'), fill = document.createElement('span');
    const value = document.createElement('span');
    row.className = 'bearlab-bar'; name.className = 'bearlab-bar-label'; track.className = 'bearlab-bar-track';
    value.className = 'bearlab-bar-value';
    name.textContent = label; value.textContent = percent(p, 1);
    fill.style.width = percent(p, 1);
    track.append(fill);
    row.append(name, track, value);
    return row;
  }));
  bars.classList.toggle('out', !pred.inDomain);
}

function showAnswer({ pred, preview, ext, size }, file) {
  clear();
  const [title, line] = headline(pred), h = document.createElement('h3'), p = document.createElement('p');
  h.textContent = title; p.textContent = line;
  answer.replaceChildren(h, p);
  answer.dataset.label = pred.inDomain ? pred.label : NOT_A_BEAR;
  answer.dataset.probs = JSON.stringify(Object.fromEntries(pred.probs)); // every digit, for checks from outside
  probBars(pred);
  URL.revokeObjectURL(photo.src);
  photo.src = URL.createObjectURL(preview);
  photo.width = Math.round(size[0] * Math.min(1, 384 / Math.max(...size))); // a small photo at its own size
  photo.hidden = false;
  last = { file, ext, pred };
  $('.bearlab-really').value = '';
  $('.bearlab-keep').disabled = true;
  $('.bearlab-flagged').textContent = '';
  $('.bearlab-feedback').hidden = false;
  show('');
  state('done');
}

function classify(file) {
  clear();
  if (file.size > config.max_bytes) {
    return showError(`${file.name} is ${mb(file.size)}: the limit is ${mb(config.max_bytes)}. `
      + 'Choose a smaller photo, or take it at a lower resolution.');
  }
  state('working');
  show(`Reading ${file.name}…`, undefined);
  worker.postMessage({ type: 'classify', id: ++asked, file });
}

function onMessage({ data: m }) {
  if (m.id !== undefined && m.id !== asked) return; // an answer to a photo since replaced
  if (m.type === 'loading') show(`Loading the model: ${mb(m.loaded)} of ${mb(m.total)}`, m.loaded / m.total);
  else if (m.type === 'ready') { show(''); app.dataset.threads = m.threads; state('ready'); }
  else if (m.type === 'step') show(m.text, undefined);
  else if (m.type === 'answer') showAnswer(m, current);
  else if (m.type === 'failed' && m.during === 'load') {
    show(''); error.hidden = false; state('broken');
    error.textContent = `The model can't run in this browser (${m.error}). Try a recent Chrome, Edge, Firefox or Safari.`;
  } else if (m.type === 'failed') {
    const name = current?.name || 'your photo';
    showError(m.text ? `${name}: ${m.text}`
      : `${name}: something went wrong reading this photo (${m.error.split(':')[0]}). Try another one.`);
  }
}

input.addEventListener('change', () => {
  const file = input.files[0];
  if (!file) return;
  current = file;
  classify(file);
  input.value = ''; // so that the same photo again is a new photo
});

// "Take a photo" opens the camera on a phone; the picker offers the camera and the photo library alike
$('.bearlab-camera').addEventListener('click', () => { input.setAttribute('capture', 'environment'); input.click(); });
$('.bearlab-pick').addEventListener('click', () => input.removeAttribute('capture'));
$('.bearlab-camera').hidden = !matchMedia('(pointer: coarse)').matches;

/** "That's wrong?": keep the photo and what it really is in this browser, for the zip `take_feedback` reads. */
async function flag() {
  const label = $('.bearlab-really').value;
  if (!last || !label) return;
  await keepFlag(last.file, last.ext, label, last.pred);
  $('.bearlab-keep').disabled = true;
  $('.bearlab-flagged').textContent = `Thanks! Kept in this browser as “${label}”.`;
  await showFlags();
}

async function showFlags() {
  const n = await countFlags();
  $('.bearlab-flags').hidden = n === 0;
  $('.bearlab-flag-count').textContent = `${n} photo${n === 1 ? '' : 's'} flagged as wrong, kept in this browser.`;
}

async function download() {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(await flagsZip());
  a.download = 'bearlab-feedback.zip';
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

function feedbackBox() {
  const really = $('.bearlab-really');
  for (const label of [...config.vocab, NOT_A_BEAR]) really.append(new Option(label, label));
  really.addEventListener('change', () => { $('.bearlab-keep').disabled = !really.value; });
  $('.bearlab-keep').addEventListener('click', flag);
  $('.bearlab-download').addEventListener('click', download);
  $('.bearlab-forget').addEventListener('click', async () => { await forgetFlags(); await showFlags(); });
}

function describe() {
  const labels = config.vocab.length > 1
    ? `${config.vocab.slice(0, -1).join(', ')} or ${config.vocab.at(-1)}` : config.vocab[0];
  $('.bearlab-intro').textContent = config.domain
    ? `Choose or take a photo of a bear — ${labels} — and the model will tell you which it is, how sure it is, `
      + 'and whether your photo looks like a bear at all.'
    : `Choose or take a photo, and the model will tell you whether it is ${labels}, and how sure it is.`;
  const formats = `${config.browser_formats}; HEIC where your browser reads it`;
  $('.bearlab-accepts').textContent = `A photo (${formats}) up to ${(config.max_bytes / 1e6).toFixed(0)} MB. `
    + 'On a phone you can take one with the camera.';
  $('.bearlab-about').textContent = 'Your photo is classified on this device, and never leaves it; photos you flag '
    + `as wrong are kept in this browser until you download or forget them. Model: ${config.description}.`;
}

async function start() {
  const r = await fetch('bearlab.json');
  config = await r.json();
  config.threads = Number(new URLSearchParams(location.search).get('threads')) || 0; // 0: ONNX Runtime's choice
  describe();
  feedbackBox();
  worker = new Worker('worker.js', { type: 'module' });
  worker.onmessage = onMessage;
  worker.onerror = (e) => onMessage({ data: { type: 'failed', during: 'load', error: e.message || 'no worker' } });
  worker.postMessage({ type: 'load', config });
  showFlags().catch(() => { $('.bearlab-flags').hidden = true; });
  // offline after the first visit: sw.js keeps every file of the site
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('sw.js').catch(() => {});
}

start().catch((e) => {
  error.hidden = false; state('broken');
  error.textContent = `This page couldn't start (${e.message}). Reload it.`;
});
