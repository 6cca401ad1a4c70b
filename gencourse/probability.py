"""Chapter 0 helpers: pmfs of English letters, n-gram "word" samplers, a Gaussian
class-conditional (generative) classifier, logistic regression, and pixel models
of binarised images.

Conventions: probabilities are float64 tensors; log-likelihoods are natural logs
(nats), and "per symbol" / "per image" values are means over symbols / images.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from importlib.resources import files

import torch
from torch import Tensor, nn

__all__ = [
    "ALPHABET", "SYMBOLS", "load_text", "normalise_text", "encode", "letter_pmf", "unigram", "bigram",
    "sample_words", "nats_per_symbol", "GaussianClassConditional", "fit_logistic_regression",
    "gaussian_blobs", "gaussian_log_pdf", "independent_bernoulli", "bernoulli_log_likelihood", "BernoulliMixture",
]

ALPHABET = "abcdefghijklmnopqrstuvwxyz"
#: Symbols of the n-gram models: index 0 is the space (word boundary), then a..z.
SYMBOLS = " " + ALPHABET


def load_text() -> str:
    """The English text shipped with the course (original prose, about 23,000 characters)."""
    return files("gencourse.assets").joinpath("english.txt").read_text(encoding="ascii")


def normalise_text(text: str) -> str:
    """Lower-case; every run of non-letters becomes one space; no leading/trailing space."""
    return re.sub(r"[^a-z]+", " ", text.lower()).strip()


def encode(text: str) -> Tensor:
    """Indices into :data:`SYMBOLS` of the normalised text, as int64."""
    t = normalise_text(text)
    return torch.tensor([SYMBOLS.index(c) for c in t], dtype=torch.long)


def letter_pmf(text: str) -> Tensor:
    """Relative frequency of each letter a..z (spaces and punctuation ignored); shape (26,), sums to 1."""
    codes = encode(text)
    counts = torch.bincount(codes[codes > 0] - 1, minlength=26).double()
    if counts.sum() == 0:
        raise ValueError("the text contains no letters")
    return counts / counts.sum()


def unigram(text: str, smoothing: float = 0.0) -> Tensor:
    """pmf over :data:`SYMBOLS` (space + 26 letters), shape (27,); ``smoothing`` is added to every count."""
    counts = torch.bincount(encode(text), minlength=27).double() + smoothing
    return counts / counts.sum()


def bigram(text: str, smoothing: float = 1.0) -> Tensor:
    """Conditional pmfs ``P[a, b] = p(next = b | previous = a)`` over :data:`SYMBOLS`, shape (27, 27).

    The text is treated as one sequence that starts and ends with a space, so
    row 0 is the distribution of first letters of words.  Each row sums to 1;
    ``smoothing`` (add-k) keeps unseen pairs possible.
    """
    codes = torch.cat([torch.zeros(1, dtype=torch.long), encode(text), torch.zeros(1, dtype=torch.long)])
    pairs = codes[:-1] * 27 + codes[1:]
    counts = torch.bincount(pairs, minlength=27 * 27).double().view(27, 27) + smoothing
    return counts / counts.sum(1, keepdim=True)


def sample_words(model: Tensor, n_words: int, *, generator: torch.Generator | None = None,
                 max_len: int = 20) -> list[str]:
    """Sample ``n_words`` words from a unigram (27,) or bigram (27, 27) model over :data:`SYMBOLS`.

    A word ends when the model emits a space (or after ``max_len`` letters).
    """
    model = torch.as_tensor(model, dtype=torch.float64)
    if model.shape not in ((27,), (27, 27)):
        raise ValueError(f"model must be a unigram pmf (27,) or a bigram matrix (27, 27), got {tuple(model.shape)}")
    words = []
    while len(words) < n_words:
        prev, word = 0, []
        while len(word) < max_len:
            p = model if model.dim() == 1 else model[prev]
            s = int(torch.multinomial(p, 1, generator=generator))
            if s == 0:
                if word:
                    break
                continue  # a word needs at least one letter
            word.append(SYMBOLS[s])
            prev = s
        words.append("".join(word))
    return words


def nats_per_symbol(model: Tensor, text: str) -> float:
    """Average negative log-likelihood of the normalised ``text`` (with a leading space) in nats per symbol."""
    model = torch.as_tensor(model, dtype=torch.float64)
    codes = torch.cat([torch.zeros(1, dtype=torch.long), encode(text)])
    if model.dim() == 1:
        logp = model[codes[1:]].log()
    else:
        logp = model[codes[:-1], codes[1:]].log()
    return float(-logp.mean())


def gaussian_log_pdf(x: Tensor, mu: float | Tensor, sigma: float | Tensor) -> Tensor:
    """log N(x; mu, sigma^2) with ``sigma`` the standard deviation, elementwise, in nats."""
    x, mu, sigma = (torch.as_tensor(v, dtype=torch.float64) for v in (x, mu, sigma))
    return -0.5 * ((x - mu) / sigma) ** 2 - sigma.log() - 0.5 * math.log(2 * math.pi)


# ---------------------------------------------------------------------------------------
# Generative vs discriminative classification on 2-D data
# ---------------------------------------------------------------------------------------
def gaussian_blobs(n: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two classes in 2-D, each a correlated Gaussian; class 1 is 1.5x as likely as class 0.

    Returns ``x`` float64 (n, 2) and ``y`` int64 (n,).
    """
    means = torch.tensor([[-1.0, -0.5], [1.2, 0.8]], dtype=torch.float64)
    covs = torch.tensor([[[1.0, 0.6], [0.6, 0.8]], [[0.6, -0.3], [-0.3, 1.2]]], dtype=torch.float64)
    y = (torch.rand(n, generator=generator, dtype=torch.float64) < 0.6).long()
    z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    chol = torch.linalg.cholesky(covs)
    x = means[y] + torch.einsum("nij,nj->ni", chol[y], z)
    return x, y


@dataclass
class GaussianClassConditional:
    """A generative classifier: p(y) categorical, p(x | y) = N(x; mu_y, Sigma_y).

    ``shared_cov=True`` gives linear discriminant analysis (one Sigma for all classes),
    otherwise each class has its own (quadratic boundaries).  Bayes' rule turns the
    joint into the classifier p(y | x) = p(x | y) p(y) / sum_k p(x | k) p(k).
    """

    priors: Tensor  # (K,)
    means: Tensor   # (K, D)
    covs: Tensor    # (K, D, D)

    @classmethod
    def fit(cls, x: Tensor, y: Tensor, *, shared_cov: bool = False) -> "GaussianClassConditional":
        """Maximum-likelihood fit (class frequencies, class means, class covariances)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        classes = int(y.max()) + 1
        priors = torch.bincount(y, minlength=classes).double() / len(y)
        means = torch.stack([x[y == k].mean(0) for k in range(classes)])
        covs = torch.stack([torch.cov((x[y == k] - means[k]).T, correction=0) for k in range(classes)])
        if shared_cov:
            covs = (priors[:, None, None] * covs).sum(0, keepdim=True).expand_as(covs).clone()
        return cls(priors, means, covs)

    def log_likelihood(self, x: Tensor) -> Tensor:
        """log p(x | y = k) for every class, shape (N, K), nats."""
        dist = torch.distributions.MultivariateNormal(self.means, covariance_matrix=self.covs)
        return dist.log_prob(torch.as_tensor(x, dtype=torch.float64)[:, None, :])

    def log_joint(self, x: Tensor) -> Tensor:
        """log p(x, y = k) = log p(x | k) + log p(k), shape (N, K)."""
        return self.log_likelihood(x) + self.priors.log()

    def predict_proba(self, x: Tensor) -> Tensor:
        """p(y = k | x) by Bayes' rule, shape (N, K)."""
        return self.log_joint(x).softmax(-1)

    def log_marginal(self, x: Tensor) -> Tensor:
        """log p(x) = log sum_k p(x, k), shape (N,): the model is also a density estimator."""
        return self.log_joint(x).logsumexp(-1)

    def sample(self, n: int, y: int | None = None, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw ``n`` pairs (x, y); with ``y`` given, draw x from p(x | y) only."""
        if y is None:
            ys = torch.multinomial(self.priors, n, replacement=True, generator=generator)
        else:
            ys = torch.full((n,), int(y), dtype=torch.long)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covs)
        return self.means[ys] + torch.einsum("nij,nj->ni", chol[ys], z), ys


def fit_logistic_regression(x: Tensor, y: Tensor, *, weight_decay: float = 1e-4, steps: int = 100) -> nn.Linear:
    """A discriminative classifier p(y | x) = softmax(W x + b), fitted by full-batch L-BFGS.

    Minimises the mean cross-entropy plus ``weight_decay * ||W||^2``.  Returns the
    linear layer (float64); ``layer(x).softmax(-1)`` gives p(y | x).
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    classes = int(y.max()) + 1
    layer = nn.Linear(x.shape[1], classes).double()
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    opt = torch.optim.LBFGS(layer.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(layer(x), y) + weight_decay * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return layer


# ---------------------------------------------------------------------------------------
# Pixel models of binarised images (why images are hard)
# ---------------------------------------------------------------------------------------
def independent_bernoulli(x: Tensor, smoothing: float = 1.0) -> Tensor:
    """Per-pixel probabilities of a fully factorised Bernoulli model, from binary images (N, D).

    ``p_i = (count_i + smoothing) / (N + 2 * smoothing)``: add-``smoothing`` keeps
    every pixel value possible, so test log-likelihoods stay finite.
    """
    x = torch.as_tensor(x, dtype=torch.float64).flatten(1)
    return (x.sum(0) + smoothing) / (x.shape[0] + 2 * smoothing)


def bernoulli_log_likelihood(x: Tensor, probs: Tensor) -> Tensor:
    """log p(x) = sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)] per image, shape (N,), nats."""
    x = torch.as_tensor(x, dtype=torch.float64).flatten(1)
    probs = torch.as_tensor(probs, dtype=torch.float64)
    return x @ probs.log() + (1 - x) @ (1 - probs).log()


@dataclass
class BernoulliMixture:
    """p(x) = sum_k pi_k prod_i Bernoulli(x_i; p_ki): a latent-variable model with a
    discrete latent k, fitted by expectation-maximisation (EM)."""

    weights: Tensor  # (K,)
    probs: Tensor    # (K, D)

    @classmethod
    def fit(cls, x: Tensor, k: int = 10, *, iters: int = 30, smoothing: float = 1.0,
            generator: torch.Generator | None = None) -> "BernoulliMixture":
        x = torch.as_tensor(x, dtype=torch.float64).flatten(1)
        n, d = x.shape
        start = torch.randperm(n, generator=generator)[:k]
        probs = (0.5 * x[start] + 0.25).clamp(0.05, 0.95)  # k data points, softened
        weights = torch.full((k,), 1.0 / k, dtype=torch.float64)
        for _ in range(iters):
            # E step: responsibilities r[n, k] = p(k | x_n)
            log_r = x @ probs.log().T + (1 - x) @ (1 - probs).log().T + weights.log()
            r = log_r.softmax(1)
            # M step: weighted frequencies (with add-smoothing, like independent_bernoulli)
            nk = r.sum(0)
            weights = nk / n
            probs = (r.T @ x + smoothing) / (nk[:, None] + 2 * smoothing)
        return cls(weights, probs)

    def log_likelihood(self, x: Tensor) -> Tensor:
        """log p(x) per image, shape (N,), nats."""
        x = torch.as_tensor(x, dtype=torch.float64).flatten(1)
        comp = x @ self.probs.log().T + (1 - x) @ (1 - self.probs).log().T
        return (comp + self.weights.log()).logsumexp(1)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Binary images (n, D): draw k from the weights, then every pixel independently."""
        ks = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return torch.bernoulli(self.probs[ks], generator=generator)
