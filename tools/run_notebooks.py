"""Run the notebooks' cells as tests, the way `nbdev_test` does, in an environment without nbdev.

nbdev 2 (the last nbdev that reads settings.ini) needs fastcore 1, and fastai 2.8.8 and later need fastcore 2. So the
library, its notebooks and its tests run in .venv on the newest fastai, and nbdev's own tools (clean, export, README,
docs) in .venv-nbdev. This script keeps `nbdev_test`'s rules: a notebook runs in its own folder with `IN_TEST=1`,
cells flagged with one of settings.ini's `tst_flags` (or `#| eval: false`) are skipped, and the first failing cell stops
that notebook with its traceback.

    python tools/run_notebooks.py [PATH ...] [--skip RE] [--flags 'slow']

PATH is a notebook or a folder (searched recursively; default: settings.ini's nbs_path). Notebooks whose name matches
--skip (default: names starting with `_` or `.`) are left out. Prints each notebook's seconds; exits 1 if any failed."""
import os, re, sys, time, argparse, configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def settings()->configparser.SectionProxy:
    c = configparser.ConfigParser(delimiters=['=']); c.read(ROOT/'settings.ini', encoding='utf-8')
    return c['DEFAULT']

def directives(source:str)->dict:
    "The `#| name value` lines at the top of a cell, as nbdev reads them: {'slow': [], 'eval:': ['false'], ...}."
    d = {}
    for line in source.splitlines():
        if not line.strip(): continue
        m = re.match(r'^\s*#\s*\|\s*(\S+)(.*)$', line)
        if not m: break
        d[m.group(1)] = m.group(2).split()
    return d

def skipped(cell, flags:set)->bool:
    "Whether `nbdev_test` would leave this cell out."
    if cell.cell_type != 'code' or 'nbdev_export'+'(' in cell.source: return True
    d = directives(cell.source)
    return d.get('eval:', [''])[0].lower() == 'false' or bool(flags & d.keys())

def run(nb_path:Path, flags:set)->tuple:
    "(passed, seconds) for one notebook."
    try: from execnb.nbio import read_nb  # execnb 0.1; later execnbs read notebooks with fastcore 2's nbio
    except ImportError: from fastcore.nbio import read_nb
    from execnb.shell import CaptureShell
    os.environ['IN_TEST'] = '1'
    nb, start, cwd = read_nb(nb_path), time.time(), os.getcwd()
    shell = CaptureShell(nb_path)
    try:
        os.chdir(nb_path.parent)
        shell.run_all(nb, exc_stop=True, preproc=lambda c: skipped(c, flags))
        return True, time.time() - start
    except (Exception, SystemExit):  # a cell's `sys.exit` fails its notebook, as in nbdev_test, and the rest still run
        sys.stderr.write(shell.prettytb(fname=nb_path) + '\n')
        return False, time.time() - start
    finally: os.chdir(cwd)

def notebooks(paths:list, skip:str)->list:
    "The notebooks under `paths`, sorted, without those whose name matches `skip`."
    out = []
    for p in map(Path, paths):
        found = [p] if p.suffix == '.ipynb' else sorted(p.rglob('*.ipynb'))
        out += [f.resolve() for f in found if not re.match(skip, f.name) and '.ipynb_checkpoints' not in f.parts]
    return out

def main():
    cfg = settings()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('paths', nargs='*', default=[str(ROOT/cfg.get('nbs_path', 'nbs'))])
    p.add_argument('--skip', default=r'^[_.]', help="regular expression: notebook names to leave out")
    p.add_argument('--flags', default='', help="space-separated tst_flags to run after all (e.g. 'slow')")
    a = p.parse_args()
    flags = set(cfg.get('tst_flags', '').split()) - set(a.flags.split())
    sys.path.insert(0, str(ROOT))
    files = notebooks(a.paths, a.skip)
    if not files: sys.exit(f'No notebooks found in {a.paths}')
    results = []
    for f in files:  # one at a time, in this process, as `nbdev_test --n_workers 1` does
        ok, secs = run(f, flags)
        results.append((f, ok, secs))
        name = f.relative_to(ROOT) if f.is_relative_to(ROOT) else f
        print(f"{'ok    ' if ok else 'FAILED'} {name}: {secs:.0f} s", flush=True)
    failed = [f for f, ok, _ in results if not ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed: sys.exit(1)

if __name__ == '__main__': main()
