#!/usr/bin/env bash
# A learner's environment, as Colab's, Kaggle's or a course's is: the newest fastai installed first, then bearlab.
# Installing bearlab must change no version of fastai, fastcore, torch or torchvision; then the quick tests and the
# book's tutorial run there. Prints what bearlab's install changed, the versions, and how long each part took.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv=$work/venv
py=$venv/bin/python
pip=("$py" -m pip install -q --disable-pip-version-check)
export OMP_WAIT_POLICY=PASSIVE
t0=$SECONDS
step() { echo "== $1 ($((SECONDS - t0)) s so far)"; }

step "a fresh virtualenv with the newest fastai, as a learner has it"
python3 -m venv "$venv"
"${pip[@]}" -U pip
"${pip[@]}" fastai
"$py" -m pip freeze --all | sort > "$work/before.txt"

step "pip install bearlab into it"
src=$work/src  # a clean copy of the checkout: building in place would leave build/ behind
mkdir "$src"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$src"
"${pip[@]}" "$src"
"$py" -m pip freeze --all | sort > "$work/after.txt"
# a package whose line is in before.txt but not in after.txt was upgraded, downgraded or removed
changed=$(comm -23 "$work/before.txt" "$work/after.txt")
names() { sed 's/[=@ ].*//' "$1" | sort; }
added=$(comm -13 <(names "$work/before.txt") <(names "$work/after.txt") | grep -vx bearlab || true)
echo "packages pip install bearlab changed or removed: ${changed:-none}"
echo "packages it added ($(echo "$added" | grep -c .)): $(echo $added)"

# fastai, fastcore, torch and torchvision must be exactly as the learner had them
check() {
  for p in fastai fastcore torch torchvision; do
    b=$(grep -i "^$p==" "$work/before.txt" || true); a=$(grep -i "^$p==" "$1" || true)
    if [ "$b" != "$a" ]; then echo "FAILED: $2 changed $p: '$b' -> '$a'"; exit 1; fi
  done
}
check "$work/after.txt" "pip install bearlab"
echo "unchanged: $(grep -iE '^(fastai|fastcore|torch|torchvision)==' "$work/after.txt" | tr '\n' ' ')"

step "the test tools (pytest, hypothesis, execnb, playwright: Debian's chromium drives the one browser test)"
"${pip[@]}" pytest pytest-timeout hypothesis execnb playwright
"$py" -m pip freeze --all | sort > "$work/tools.txt"
check "$work/tools.txt" "installing the test tools"
"$py" -c "import bearlab.all, fastai, fastcore, torch; print('import bearlab.all: ok with fastai', fastai.__version__, \
'fastcore', fastcore.__version__, 'torch', torch.__version__)"

step "the quick tests and the book's tutorial, side by side"
book_log=$work/book.log
(cd "$root" && "$py" tools/run_notebooks.py nbs/tutorials/book.ipynb > "$book_log" 2>&1) & book=$!
rest=0; (cd "$root" && "$venv/bin/pytest" tests/test_sgd.py tests/test_search.py tests/test_data.py) || rest=$?
b=0; wait $book || b=$?
echo "== nbs/tutorials/book.ipynb"; cat "$book_log"

step "a broken mix: fastcore 1 under the newest fastai"
"${pip[@]}" --no-deps 'fastcore==1.14.5'
said=$(cd "$work" && "$py" -c "import bearlab" 2>&1 | tail -1 || true)
echo "import bearlab says: $said"
mix=0; [[ "$said" == "ImportError: fastai "*" needs fastcore"*"pip install -U"* ]] || { echo "FAILED: not the one sentence"; mix=1; }
step "done"
test $rest = 0 && test $b = 0 && test $mix = 0
