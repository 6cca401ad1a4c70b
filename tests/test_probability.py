import math
from collections import Counter

import torch

from gencourse import probability as prob


def test_letter_pmf_against_counter():
    text = "The cat, the hat; THE bat!"
    pmf = prob.letter_pmf(text)
    counts = Counter(c for c in text.lower() if c.isalpha())
    total = sum(counts.values())
    for i, ch in enumerate(prob.ALPHABET):
        assert math.isclose(float(pmf[i]), counts.get(ch, 0) / total)


def test_shipped_text_looks_like_english():
    pmf = prob.letter_pmf(prob.load_text())
    top = "".join(prob.ALPHABET[i] for i in pmf.argsort(descending=True)[:3])
    assert top[0] == "e" and set(top) <= set("etaoin")
    assert (pmf > 0).all()


def test_bigram_counts_by_hand():
    P = prob.bigram("ab a", smoothing=0.0)
    # sequence with boundaries: " ab a " -> pairs (_,a) (a,b) (b,_) (_,a) (a,_)
    a, b, sp = prob.SYMBOLS.index("a"), prob.SYMBOLS.index("b"), 0
    assert P[sp, a] == 1.0 and P[a, b] == 0.5 and P[a, sp] == 0.5 and P[b, sp] == 1.0
    Ps = prob.bigram("some longer text here", smoothing=1.0)
    assert torch.allclose(Ps.sum(1), torch.ones(27, dtype=torch.float64))


def test_nats_per_symbol_of_uniform_is_log27():
    uniform = torch.full((27,), 1 / 27, dtype=torch.float64)
    assert math.isclose(prob.nats_per_symbol(uniform, "any text at all"), math.log(27))
    assert math.isclose(prob.nats_per_symbol(torch.full((27, 27), 1 / 27, dtype=torch.float64), "abc"), math.log(27))


def test_sample_words_follow_a_deterministic_chain(gen):
    P = torch.zeros(27, 27, dtype=torch.float64)
    seq = " cab "
    for s, t in zip(seq, seq[1:]):
        P[prob.SYMBOLS.index(s), prob.SYMBOLS.index(t)] = 1.0
    P[prob.SYMBOLS.index(" "), :] = 0
    P[0, prob.SYMBOLS.index("c")] = 1.0
    assert prob.sample_words(P, 3, generator=gen) == ["cab"] * 3


def test_gaussian_log_pdf_against_torch():
    x = torch.linspace(-3, 3, 11)
    ref = torch.distributions.Normal(0.5, 0.2).log_prob(x.double())
    assert torch.allclose(prob.gaussian_log_pdf(x, 0.5, 0.2), ref)


def test_gda_recovers_parameters_and_applies_bayes(gen):
    x, y = prob.gaussian_blobs(20000, generator=gen)
    gda = prob.GaussianClassConditional.fit(x, y)
    assert abs(float(gda.priors[1]) - 0.6) < 0.02
    assert torch.allclose(gda.means, torch.tensor([[-1.0, -0.5], [1.2, 0.8]], dtype=torch.float64), atol=0.05)
    assert torch.allclose(gda.covs[0], torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64), atol=0.06)
    # Bayes' rule by hand for one point, with scipy-free closed-form Gaussian densities
    pt = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    dens = []
    for k in range(2):
        d = pt[0] - gda.means[k]
        cov = gda.covs[k]
        quad = d @ torch.linalg.solve(cov, d)
        dens.append(math.exp(-0.5 * quad) / (2 * math.pi * math.sqrt(torch.linalg.det(cov))) * gda.priors[k])
    manual = dens[1] / (dens[0] + dens[1])
    assert math.isclose(float(gda.predict_proba(pt)[0, 1]), float(manual), rel_tol=1e-9)
    xs, ys = gda.sample(5000, y=1, generator=gen)
    assert (ys == 1).all() and torch.allclose(xs.mean(0), gda.means[1], atol=0.05)


def test_shared_covariance_gives_linear_boundary(gen):
    x, y = prob.gaussian_blobs(2000, generator=gen)
    lda = prob.GaussianClassConditional.fit(x, y, shared_cov=True)
    assert torch.allclose(lda.covs[0], lda.covs[1])
    pts = torch.randn(50, 2, dtype=torch.float64, generator=gen)
    logit = lda.log_joint(pts) @ torch.tensor([-1.0, 1.0], dtype=torch.float64)
    # a linear function of x: second differences along any line vanish
    t = torch.linspace(-2, 2, 5, dtype=torch.float64)[:, None]
    line = lda.log_joint(t * torch.tensor([[1.0, 2.0]], dtype=torch.float64)) @ torch.tensor([-1.0, 1.0], dtype=torch.float64)
    assert torch.allclose(line[2:] - 2 * line[1:-1] + line[:-2], torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert logit.shape == (50,)


def test_logistic_regression_is_at_a_stationary_point(gen):
    x, y = prob.gaussian_blobs(500, generator=gen)
    layer = prob.fit_logistic_regression(x, y, weight_decay=1e-3)
    loss = torch.nn.functional.cross_entropy(layer(x), y) + 1e-3 * layer.weight.pow(2).sum()
    grads = torch.autograd.grad(loss, list(layer.parameters()))
    assert max(float(g.abs().max()) for g in grads) < 1e-5


def test_bernoulli_models(gen):
    x = torch.bernoulli(torch.full((300, 16), 0.3, dtype=torch.float64), generator=gen)
    p = prob.independent_bernoulli(x, smoothing=0.0)
    assert torch.allclose(p, x.mean(0))
    ref = torch.distributions.Bernoulli(probs=p.clamp(1e-6, 1 - 1e-6)).log_prob(x).sum(1)
    assert torch.allclose(prob.bernoulli_log_likelihood(x, p.clamp(1e-6, 1 - 1e-6)), ref)
    # a one-component mixture is the independent model
    mix1 = prob.BernoulliMixture.fit(x, k=1, iters=3)
    assert torch.allclose(mix1.probs[0], prob.independent_bernoulli(x))
    # EM never decreases the training log-likelihood
    lls = [float(prob.BernoulliMixture.fit(x, k=3, iters=i, generator=torch.Generator().manual_seed(0))
                 .log_likelihood(x).mean()) for i in range(1, 8)]
    assert all(b >= a - 1e-6 for a, b in zip(lls, lls[1:]))
    assert mix1.sample(7, generator=gen).shape == (7, 16)
