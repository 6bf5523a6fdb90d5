"""A tiny Llama-architecture model and tokenizer built locally, for the tests and the demo.

Nothing is downloaded: a byte-level BPE tokenizer is trained with ``tokenizers`` on a few KB
of generated text, given a Llama-3-style chat template, and saved beside a randomly
initialised ``LlamaForCausalLM`` with the seed fixed, so two builds are identical. The
result loads with ``from_pretrained`` like any model directory (also offline).
"""

from __future__ import annotations

from pathlib import Path

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
EOT = "<|eot_id|>"
PAD = "<|pad|>"
HEADER_START = "<|start_header_id|>"
HEADER_END = "<|end_header_id|>"
SPECIAL_TOKENS = [BOS, EOS, EOT, PAD, HEADER_START, HEADER_END]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{{ message['content'] + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

_TEXT = (
    "the a an of to in is it you that he was for on are with as his they be at one have "
    "this from or had by word but what some we can out other were all there when up use "
    "your how said each she which do their time if will way about many then them write "
    "would like so these her long make thing see him two has look more day could go come "
    "did number sound no most people my over know water than call first who may down side "
    "been now find any new work part take get place made live where after back little only "
    "round man year came show every good me give our under name very through just form "
    "sentence great think say help low line differ turn cause much mean before move right "
    "boy old too same tell does set three want air well also play small end put home read "
    "hand port large spell add even land here must big high such follow act why ask men "
    "change went light kind off need house picture try us again animal point mother world "
    "near build self earth father head stand own page should country found answer school "
    "grow study still learn plant cover food sun four between state keep eye never last "
    "let thought city tree cross farm hard start might story saw far sea draw left late "
    "run while press close night real life few north open color red blue green yellow "
    "black white orange purple apple banana cherry grape lemon user assistant system "
    "question reply capital france paris code zero"
)


def _corpus() -> list[str]:
    """Text with every byte value's common neighbours: words, digits, punctuation, JSON."""
    words = _TEXT.split()
    lines = []
    for i in range(0, len(words), 7):
        chunk = words[i : i + 7]
        lines.append(" ".join(chunk).capitalize() + ".")
        lines.append(f"Q: {' '.join(reversed(chunk))}? A: {chunk[0]} {i} {i * 7 % 100}!")
    lines.append("0123456789 +-*/=()[]{}<>:;,.'\"?!@#$%^&_|\\~` \n\t")
    return lines * 4


def build_tiny_model(
    path: Path,
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_positions: int = 512,
    head_std: float = 0.1,
    seed: int = 0,
) -> Path:
    """Write a tokenizer and a random-init Llama model to ``path`` and return ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    bpe.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bpe.token_to_id(BOS))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        model_max_length=max_positions,
    )
    tokenizer.save_pretrained(path)

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    # With the usual 0.02 init the head cannot produce a logit above ~1.3 after the final
    # norm, and LoRA (which leaves the head alone) could never make a confident prediction.
    # A wider head keeps the starting loss near ln(vocab) yet lets an adapter learn a task.
    torch.nn.init.normal_(model.lm_head.weight, std=head_std)
    model.save_pretrained(path)
    return path
