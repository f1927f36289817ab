// Offline after the first visit: every file of the site is kept in a cache, and answered from it, network or not.
// `bearlab export-web` writes the site's own version below, so that a new export replaces the old files.
const VERSION = 'bearlab-site'; // bearlab export-web: version
const FILES = ['./', 'index.html', 'app.js', 'worker.js', 'preprocess.js', 'photo.js', 'predict.js', 'flags.js',
  'bearlab.css', 'bearlab.json', 'model.onnx', 'manifest.webmanifest', 'icon.svg', 'icon-192.png', 'icon-512.png',
  'ort/ort.wasm.bundle.min.mjs', 'ort/ort-wasm-simd-threaded.wasm'];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(VERSION).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith('bearlab-') && k !== VERSION).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (e) => {
  if (e.request.method !== 'GET') return;
  e.respondWith(caches.open(VERSION)
    .then((c) => c.match(e.request, { ignoreSearch: true }))
    .then((hit) => hit || fetch(e.request)));
});
