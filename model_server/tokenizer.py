"""One small word-piece tokenizer built locally with ``tokenizers`` (no hub download), shared by a whole fleet;
and the server's loading of tokenizers, shared between models whose tokenizer.json and seq_len are the same."""

from __future__ import annotations

import hashlib
import itertools
import string
import threading
from collections import OrderedDict
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# A built-in word list: enough common English for realistic token counts; characters and ``##`` pieces
# guarantee that any ASCII word still tokenizes without [UNK].
_WORD_TEXT = """
the of and to in is was for on that with as by at from it his an were are which be this has or had not but
their also its new first one two three after who they have her she been other all more time year years when
there into can than only over most some would during him between such these about many up out so if no may
later made under where while each both through city state world season film music game team school company
model models server servers load test latency throughput request requests batch queue memory cpu gpu graviton
inference network cluster node nodes pod pods service cost price fast slow good bad great small large big
what how why who which question answer context text sentence word words token tokens language review movie
book product quality service price delivery support happy sad love hate like recommend terrible excellent
day week month people house water food work life hand part place case point group number way thing man woman
child government system program problem fact country home room area money story issue side kind head
"""
_WORDS = _WORD_TEXT.split()


def build_vocab(size: int) -> dict[str, int]:
    """Special tokens, characters, ``##`` continuations, words; then ``##`` letter pairs/triples up to ``size``."""
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab: list[str] = [*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars)]
    vocab += [w for w in dict.fromkeys(_WORDS) if w not in vocab]
    if len(vocab) > size:
        raise ValueError(f"vocab_size must be at least {len(vocab)}, got {size}")
    pieces = ("".join(letters) for n in (2, 3) for letters in itertools.product(string.ascii_lowercase, repeat=n))
    vocab += itertools.islice((f"##{p}" for p in pieces), size - len(vocab))
    return {token: index for index, token in enumerate(vocab)}


def build_tokenizer(vocab_size: int = 2000, seq_len: int = 128) -> Tokenizer:
    """A BERT-style uncased word-piece tokenizer that pads and truncates to ``seq_len``."""
    tokenizer = Tokenizer(models.WordPiece(build_vocab(vocab_size), unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.decoder = decoders.WordPiece()
    configure_length(tokenizer, seq_len)
    return tokenizer


def configure_length(tokenizer: Tokenizer, seq_len: int) -> None:
    """Pad and truncate every encoding to exactly ``seq_len`` tokens, the model's fixed sequence length."""
    tokenizer.enable_truncation(max_length=seq_len)
    tokenizer.enable_padding(length=seq_len, pad_id=0, pad_token="[PAD]")


class _Tokenizers:
    """Loaded tokenizers by (file content, seq_len), the least recently used dropped beyond ``limit``.

    A fleet's models carry the same tokenizer.json: parsing it once, not per model load (~1.4 ms and ~0.3 MiB
    each for the fleet's), is safe because a configured tokenizer is only read afterwards (``encode_batch``)."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._loaded: OrderedDict[tuple[str, int], Tokenizer] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, path: Path, seq_len: int) -> Tokenizer:
        try:
            text = path.read_bytes()
            key = (hashlib.sha256(text).hexdigest(), seq_len)
            with self._lock:
                found = self._loaded.get(key)
                if found is not None:
                    self._loaded.move_to_end(key)
                    return found
            tokenizer = Tokenizer.from_str(text.decode())
        except Exception as err:  # OSError, UnicodeDecodeError, and tokenizers' plain Exception for invalid files
            raise ValueError(f"{path}: not a loadable tokenizer: {err}") from None
        configure_length(tokenizer, seq_len)
        with self._lock:
            self._loaded[key] = tokenizer
            while len(self._loaded) > self.limit:
                self._loaded.popitem(last=False)
        return tokenizer


_TOKENIZERS = _Tokenizers()


def load_tokenizer(path: Path, seq_len: int) -> Tokenizer:
    """A tokenizer file padded and truncated to ``seq_len``; the same object for the same file and length."""
    return _TOKENIZERS.load(path, seq_len)
