// PhotoPicker (bearlab.app), in the browser: refuse a photo over `max_bytes` here, else send it to the kernel
// in pieces of `chunk_bytes`, each acknowledged before the next, with a progress bar.
const mb = (n) => (n / 1e6).toFixed(1) + ' MB';
function render({ model, el }) {
  if (!document.querySelector('meta[name=viewport]')) {  // Voila's page doesn't say it fits a phone
    const m = document.createElement('meta');
    m.name = 'viewport'
    m.content = 'width=device-width, initial-scale=1'
    document.head.appendChild(m);
  }
  const label = document.createElement('label'), input = document.createElement('input');
  const text = document.createElement('span'), bar = document.createElement('progress');
  const status = document.createElement('div');
  label.className = 'bearlab-pick'
  input.className = 'bearlab-file'
  bar.className = 'bearlab-progress'
  status.className = 'bearlab-upload-status';
  input.type = 'file'
  input.accept = model.get('accept')
  text.textContent = model.get('description')
  bar.max = 1
  bar.hidden = true
  label.append(input, text)
  el.append(label, bar, status)
  el.classList.add('bearlab-picker')
  let acked = null;
  const show = (msg, frac) => {
    status.textContent = msg; bar.hidden = frac === null;
    if (typeof frac === 'number') bar.value = frac; else bar.removeAttribute('value');
  };
  const idle = () => { input.disabled = false; label.classList.remove('busy'); show('', null); };
  model.on('msg:custom', (m) => {
    if (m.ack !== undefined && acked) { const r = acked; acked = null; r(m.ack); }
    if (m.done) { if (acked) { const r = acked; acked = null; r(-1); } idle(); }
  });
  async function send(f) {
    if (f.size > model.get('max_bytes')) { model.send({ event: 'refused', name: f.name, size: f.size }); return; }
    input.disabled = true
    label.classList.add('busy')
    model.send({ event: 'start', name: f.name, size: f.size });
    const step = model.get('chunk_bytes');
    for (let off = 0; off < f.size; off += step) {
      show(`Sending ${f.name}: ${mb(off)} of ${mb(f.size)}`, off / f.size);
      const buf = await f.slice(off, off + step).arrayBuffer();
      const ack = new Promise((r) => { acked = r; });
      model.send({ event: 'chunk' }, undefined, [buf]);
      if ((await ack) < 0) return;  // the kernel stopped this upload, and said why
    }
    show(`Reading ${f.name}…`, undefined);
    model.send({ event: 'end' });
  }
  input.addEventListener('change', () => {
    const f = input.files[0];
    input.value = '';  // so that the same photo again is a new upload
    if (f) send(f).catch((e) => { model.send({ event: 'failed', name: f.name, error: String(e) }); idle(); });
  });
}
export default { render };
