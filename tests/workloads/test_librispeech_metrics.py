"""LibriSpeech metrics: greedy CTC decoding on hand-made logits, word errors by hand and against jiwer, batch WER."""

from __future__ import annotations

import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

from workloads.librispeech import metrics, tokenizer  # noqa: E402

SENTENCES = [
    "HE WAS NOT AN ILL DISPOSED YOUNG MAN",
    "HE MIGHT EVEN HAVE BEEN MADE AMIABLE HIMSELF",
    "PLEASE ENTER YOUR PASSWORD FOLLOWED BY THE POUND KEY",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "DON'T WORRY ABOUT THE WEATHER",
]


def _logits(frames, vocab=6):
    """(1, T, vocab) logits whose arg-max per frame is the given id."""
    out = torch.full((1, len(frames), vocab), -1.0)
    out[0, torch.arange(len(frames)), torch.tensor(frames)] = 2.0
    return out


def _reference_decode(frames, paddings):
    """CTC's greedy rule spelled out: unpadded frames, runs collapsed, blanks dropped."""
    ids, previous = [], None
    for frame, padded in zip(frames, paddings):
        frame = 0 if padded else frame
        if frame != previous and frame != 0:
            ids.append(frame)
        previous = frame
    return ids


@pytest.fixture(scope="module")
def spm(tmp_path_factory):
    path = tmp_path_factory.mktemp("spm") / "spm_model.vocab"
    return tokenizer.load_tokenizer(tokenizer.train(SENTENCES * 3, path, vocab_size=60, soft_limit=True))


# --- greedy decoding ---------------------------------------------------------------------------------


def test_greedy_decode_collapses_repeats_drops_blanks_and_padded_frames():
    # frames:  a a _ a b b _ _ c | padded (a high logit there must not count)
    frames = [1, 1, 0, 1, 2, 2, 0, 0, 3, 4, 4]
    paddings = torch.tensor([[0.0] * 9 + [1.0] * 2])
    decoded, decoded_paddings = metrics.greedy_decode(_logits(frames), paddings)
    assert decoded.tolist() == [[1, 1, 2, 3] + [0] * 7]  # the blank between the a's keeps both
    assert decoded_paddings.tolist() == [[0.0] * 4 + [1.0] * 7] and decoded_paddings.dtype == torch.float32
    # All blank, or all padding: nothing decoded, all padding.
    for frames, pads in (([0, 0, 0], [0.0, 0.0, 0.0]), ([5, 5, 5], [1.0, 1.0, 1.0])):
        decoded, decoded_paddings = metrics.greedy_decode(_logits(frames), torch.tensor([pads]))
        assert decoded.tolist() == [[0, 0, 0]] and decoded_paddings.tolist() == [[1.0, 1.0, 1.0]]
    # A run across the first frame, and one right up to the padding.
    decoded, _ = metrics.greedy_decode(_logits([3, 3, 3, 2, 2]), torch.tensor([[0.0, 0, 0, 0, 0]]))
    assert decoded.tolist() == [[3, 2, 0, 0, 0]]


def test_greedy_decode_matches_the_rule_on_random_batches():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn((16, 40, 5), generator=generator) * 3
    logits[:, :, 0] += 1.5  # blanks as common as in a trained model
    lengths = torch.randint(0, 41, (16,), generator=generator)
    paddings = (torch.arange(40)[None, :] >= lengths[:, None]).float()
    decoded, decoded_paddings = metrics.greedy_decode(logits, paddings)
    for row in range(16):
        expected = _reference_decode(logits[row].argmax(-1).tolist(), paddings[row].tolist())
        assert decoded[row, : len(expected)].tolist() == expected and decoded[row, len(expected) :].eq(0).all()
        assert decoded_paddings[row].tolist() == [0.0] * len(expected) + [1.0] * (40 - len(expected))


# --- word errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hypothesis, reference, errors",
    [
        ("THE CAT SAT", "THE CAT SAT", 0),
        ("THE CAT SIT", "THE CAT SAT", 1),  # a substitution
        ("THE CAT", "THE CAT SAT", 1),  # a deletion
        ("THE BIG CAT SAT", "THE CAT SAT", 1),  # an insertion
        ("", "THE CAT SAT", 3),
        ("THE CAT SAT", "", 3),
        ("CAT THE SAT", "THE CAT SAT", 2),  # a swap is two edits
        ("THE CAT SIT ON MAT", "THE CAT SAT ON THE MAT", 2),
        ("  THE   CAT ", "THE CAT", 0),  # words, not spaces
        ("A B C D", "W X Y Z", 4),
    ],
)
def test_word_errors_by_hand(hypothesis, reference, errors):
    assert metrics.word_errors(hypothesis, reference) == errors
    assert metrics.word_errors(reference, hypothesis) == errors  # symmetric


def test_wer_is_summed_errors_over_summed_reference_words():
    # 1 error in 3 words and 2 in 6: (1 + 2) / (3 + 6), not the mean of 1/3 and 2/6.
    assert metrics.wer(["THE CAT SIT", "THE CAT SIT ON MAT"], ["THE CAT SAT", "THE CAT SAT ON THE MAT"]) == pytest.approx(3 / 9)
    with pytest.raises(ValueError, match="no words"):
        metrics.wer([""], [""])


def test_wer_agrees_with_jiwer():
    jiwer = pytest.importorskip("jiwer")
    rng = random.Random(0)
    words = "A B C THE CAT SAT ON MAT DOG RAN".split()
    references = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(200)]
    hypotheses = []
    for reference in references:
        hyp = reference.split()
        for _ in range(rng.randint(0, 4)):
            edit, at = rng.choice("sid"), rng.randint(0, len(hyp))
            if edit == "i" or not hyp:
                hyp.insert(at, rng.choice(words))
            elif edit == "d":
                hyp.pop(min(at, len(hyp) - 1))
            else:
                hyp[min(at, len(hyp) - 1)] = rng.choice(words)
        hypotheses.append(" ".join(hyp))
    assert metrics.wer(hypotheses, references) == pytest.approx(jiwer.wer(references, hypotheses), rel=1e-12)
    for hypothesis, reference in zip(hypotheses[:50], references[:50]):
        assert metrics.word_errors(hypothesis, reference) == jiwer.process_words(reference, hypothesis).wer * len(reference.split())


# --- a batch, through the tokenizer --------------------------------------------------------------------


def _padded(rows, width):
    ids = np.zeros((len(rows), width), np.float32)
    paddings = np.ones((len(rows), width), np.float32)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        paddings[i, : len(row)] = 0.0
    return ids, paddings


def test_batch_word_errors_detokenise_and_skip_padding_rows(spm):
    references = [SENTENCES[0], SENTENCES[1], ""]  # the last row is the eval pipeline's padding row
    hypotheses = ["HE WAS NOT AN ILL DISPOSED MAN", SENTENCES[1], "THE DOG"]
    targets, target_paddings = _padded([spm.encode(t) if t else [] for t in references], 256)  # float32, EOS included
    decoded, decoded_paddings = _padded([spm.encode(t)[:-1] for t in hypotheses], 40)  # decoded ids carry no EOS
    weights = np.array([1.0, 1.0, 0.0], np.float32)
    errors, words = metrics.batch_word_errors(torch.from_numpy(decoded), torch.from_numpy(decoded_paddings), torch.from_numpy(targets),
                                              torch.from_numpy(target_paddings), spm, weights=torch.from_numpy(weights))
    assert (errors, words) == (1.0, 16.0)  # one deletion; 8 + 8 reference words; the padding row counts for nothing
    # Without weights the padding row's words would count as insertions.
    assert metrics.batch_word_errors(decoded, decoded_paddings, targets, target_paddings, spm) == (3.0, 16.0)
    assert metrics.detokenize_rows(targets, target_paddings, spm) == references


def test_greedy_decode_then_wer_end_to_end(spm):
    text = "HE MIGHT EVEN HAVE BEEN MADE AMIABLE HIMSELF"
    ids = spm.encode(text)[:-1].tolist()
    # Frames: each id twice with blanks between words' pieces, trailing padded frames.
    frames = [frame for i in ids for frame in (i, i, 0)] + [ids[0]] * 4
    paddings = torch.tensor([[0.0] * (3 * len(ids)) + [1.0] * 4])
    decoded, decoded_paddings = metrics.greedy_decode(_logits(frames, vocab=spm.vocab_size), paddings)
    targets, target_paddings = _padded([spm.encode(text)], 256)
    assert metrics.batch_word_errors(decoded, decoded_paddings, targets, target_paddings, spm) == (0.0, 8.0)


# --- upstream's tf.Tensor string quirk ----------------------------------------------------------------


def test_upstream_counting_of_tf_tensor_strings():
    assert metrics.tf_string_form("HELLO WORLD") == "tf.Tensor(b'HELLO WORLD', shape=(), dtype=string)"
    assert metrics.tf_string_form("DON'T GO") == "tf.Tensor(b\"DON'T GO\", shape=(), dtype=string)"
    # Two extra reference words per row; errors as usual when the first and last words match.
    assert metrics.upstream_word_counts("HELLO WORLD", "HELLO WORLD") == (0, 4)
    assert metrics.upstream_word_counts("HELLO WORD", "HELLO WORLD") == (1, 4)
    assert metrics.upstream_word_counts("", "HELLO THERE WORLD") == (3, 5)
    # An apostrophe on one side only changes the quotes, so the last word differs too.
    assert metrics.upstream_word_counts("DONT GO", "DON'T GO") == (2, 4)
    assert metrics.word_errors("DONT GO", "DON'T GO") == 1


def test_batch_word_errors_can_count_as_upstream(spm):
    targets, target_paddings = _padded([spm.encode(SENTENCES[0])], 256)
    decoded, decoded_paddings = _padded([spm.encode("HE WAS NOT AN ILL DISPOSED MAN")[:-1]], 40)
    assert metrics.batch_word_errors(decoded, decoded_paddings, targets, target_paddings, spm) == (1.0, 8.0)
    assert metrics.batch_word_errors(decoded, decoded_paddings, targets, target_paddings, spm, upstream_tf_strings=True) == (1.0, 10.0)
