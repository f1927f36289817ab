// From the model's outputs to what the page says: bearlab.inference's `Classifier._read` and `Prediction.message`,
// and the Voila app's headline (bearlab.app.answer_html), in the same words.

/** `x` as Python's `f"{x:.{digits}%}"` writes it: exact ties go to the even digit, as Python rounds them. */
export function percent(x, digits = 0) {
  const v = x * 100, exact = v.toFixed(100), dot = exact.indexOf('.'); // toFixed(100): every digit of the double
  if (!/^50*$/.test(exact.slice(dot + 1 + digits))) return v.toFixed(digits) + '%';
  const kept = exact.slice(0, dot + 1 + digits).replace(/\.$/, ''); // an exact tie: toFixed rounds it up
  return (+kept.at(-1) % 2 ? v.toFixed(digits) : kept) + '%';
}

const withArticle = (noun) => ('aeiou'.includes(noun.slice(0, 1).toLowerCase()) ? 'an ' : 'a ') + noun;

/** What the model says about one photo, from its `logits`: label, probabilities (highest first), in domain or not. */
export function readLogits(logits, config) {
  const { vocab, outputs, domain, domain_top: top, output_names: names } = config;
  const sub = outputs ? outputs.map((i) => logits[i]) : Array.from(logits);
  const max = Math.max(...sub), e = sub.map((v) => Math.exp(v - max)), sum = e.reduce((a, b) => a + b, 0);
  const probs = e.map((v) => v / sum);
  const order = probs.map((_, i) => i).sort((a, b) => probs[b] - probs[a]);
  let inDomain = true, looksLike = null;
  if (domain) {
    // fewer than `domain_top` outputs beat the likeliest of `domain` (ties count for it)
    const best = Math.max(...domain.map((i) => logits[i]));
    inDomain = logits.filter((v) => v > best).length < top;
    if (!inDomain && names) looksLike = names[logits.indexOf(Math.max(...logits))];
  }
  return { label: vocab[order[0]], probs: order.map((i) => [vocab[i], probs[i]]), inDomain, looksLike };
}

/** `Prediction.message`: one sentence for a person. */
export function message(pred) {
  const prob = pred.probs[0][1];
  if (pred.inDomain) return `${pred.label} (${percent(prob)} sure)`;
  const seen = pred.looksLike ? `: it looks more like ${withArticle(pred.looksLike)}` : '';
  return `This doesn't look like a bear${seen}. (If it had to be one of mine, I'd say ${pred.label}.)`;
}

/** The headline and the line under it, as the Voila app shows them. */
export function headline(pred) {
  if (pred.inDomain) return [`It's ${pred.label}!`, `${percent(pred.probs[0][1])} sure.`];
  return ['Hmm, not a bear?', message(pred)];
}
