"""Download throughput: bearlab's `download_images` against fastai's, on a few hundred URLs from a local practice server.

    python bench/download.py [N_IMAGES]

Prints images per second and the per-URL failure rate for each, the ratio, and how many invalid files each left in its folder
(fastai keeps whatever bytes it got: HTML pages and truncated JPEGs land as .jpg)."""
import os, sys, tempfile, time
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
from pathlib import Path
from fastai.vision.utils import download_images as fastai_download_images
from bearlab.images import ImageError, open_image
from bearlab.files import image_files
from bearlab.practice import ImageServer
from bearlab.download import download_images

def invalid_files(dest:Path)->int:
    "How many image files in `dest` aren't complete photos."
    n = 0
    for f in image_files(dest):
        try: open_image(f)
        except ImageError: n += 1
    return n

def main(n_images:int=300):
    tmp = Path(tempfile.mkdtemp())
    with ImageServer(n_images=n_images, size=320) as srv:
        urls = srv.result_urls('grizzly bear')
        download_images(tmp/"warmup", urls=urls, progress=False, timeout=4)  # the server caches its generated photos
        t = time.perf_counter(); fastai_download_images(tmp/'fastai', urls=urls, n_workers=8, timeout=4)
        t_fastai = time.perf_counter() - t
        t = time.perf_counter(); df = download_images(tmp/"bearlab", urls=urls, n_workers=8, timeout=4, progress=False)
        t_bearlab = time.perf_counter() - t
    n_fastai = len(image_files(tmp/'fastai'))
    n_ok = (df.status == 'ok').sum()
    print(f"{len(urls)} URLs from a local server ({n_images} photos of 320 px, 5 broken URLs, 1 exact and 1 near copy)")
    print(f"fastai : {n_fastai/t_fastai:7.1f} files/s   {t_fastai:5.2f} s   {n_fastai} files kept, {invalid_files(tmp/'fastai')} of them invalid, failures not reported")
    print(f"bearlab: {n_ok/t_bearlab:7.1f} photos/s  {t_bearlab:5.2f} s   {n_ok} photos kept, {invalid_files(tmp/'bearlab')} invalid, "
          f"failure rate {(df.status == 'failed').mean():.1%} ({(df.status == 'failed').sum()} URLs, each with its reason in downloads.csv)")
    print(f"ratio bearlab/fastai, seconds for the same URLs: {t_bearlab/t_fastai:.2f}")

if __name__ == '__main__': main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
