"""Text out of a Gato checkpoint: caption an image, answer a question about it, continue text, chat.

    python -m gato.generate --image cat.png                       # caption it
    python -m gato.generate --image scene.png --prompt "Q: what colour is the cube? A:"
    python -m gato.generate --prompt "The agent picked up the"    # continue the text
    python -m gato.generate --chat                                 # a dialogue, one turn a line

The sampled text is streamed to stdout as it comes (the prompt is not repeated); what was run and
why generation stopped go to stderr. Tokens are sampled through the KV cache, as acting does
(gato/text_generator.py), restricted to text tokens [0, 32000), and generation stops at end of
text (SentencePiece's EOS, id 2) or after --max-new-tokens.

An image and its prompt are one vision-language pair `[image patches, text]`, as training lays it
out (spec section 12). An image is read at the size training reads such an image (gato/images.py):
a 64x64 or 128x128 image as it is (a generated scene, a fitted photo), any other resized with its
aspect kept and padded with black to 128x128, as training fits photos, with a note on stderr;
--image-size sets another square size.

Chat (--chat, text only): each line read from stdin is one user turn, fed as the document text
"User: <line>\\nGato:"; the reply is sampled until it writes a newline, reaches end of text or
--max-new-tokens, and ends with a newline in the context. The whole dialogue stays in one sliding
memory of --context-tokens (older turns fade out as in acting, nothing is cut at a turn). --prompt
with --chat is fed first, as the dialogue's opening context. Empty lines are skipped; end of input
ends the dialogue. A prompt longer than the context is seen through the same sliding memory.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from gato.cli import check_at_least, parse_dataclass_args
from gato.errors import UserError, run_command

DEFAULT_RUNS_DIR = "runs"
USER_TURN = "User: {line}\nGato:"
"""How a chat turn is fed: the user's line, then the model's name for it to reply after."""


@dataclass
class GenerateArgs:
    """Options of ``python -m gato.generate``."""

    prompt: str | None = None
    """text to continue; with --image, the text after the image (e.g. "Q: what is red? A:")"""
    image: str | None = None
    """image file to caption (no --prompt) or to ask --prompt about (PNG, JPEG, ...)"""
    chat: bool = False
    """a dialogue: each stdin line is a turn, fed as 'User: <line>\\nGato:', the reply ends at
    a newline or end of text"""
    checkpoint: str | None = None
    """checkpoint folder or run folder (default: the newest checkpoint under --runs-dir)"""
    runs_dir: str = DEFAULT_RUNS_DIR
    """where to look for the newest checkpoint when --checkpoint is not given"""
    max_new_tokens: int = 64
    """most text tokens to sample per answer or turn"""
    greedy: bool = False
    """take the most likely text token instead of sampling"""
    temperature: float = 1.0
    """sampling temperature (0 = greedy)"""
    top_k: int | None = None
    """sample among the k most likely text tokens only (default: all 32000)"""
    seed: int = 0
    """seed of the sampling generator"""
    image_size: int | None = None
    """side of the square the image is fitted to, a multiple of 16 (default: 64x64 and 128x128
    images as they are, any other fitted to 128, as in training)"""
    context_tokens: int | None = None
    """attention window of the sliding memory (default: the model's block_size)"""
    no_cache: bool = False
    """recompute the whole context for every token instead of using the KV cache (slow)"""
    device: str = "cpu"
    """torch device, e.g. cpu or cuda"""
    threads: int | None = None
    """torch CPU threads (default: torch's choice)"""


def check_args(args: GenerateArgs) -> None:
    """UserError naming the flag whose value cannot work, before anything is loaded."""
    check_at_least(
        args,
        {"max_new_tokens": 1, "temperature": 0, "top_k": 1, "context_tokens": 2, "threads": 1},
    )
    if args.image_size is not None:
        from gato.images import check_image_size

        try:
            check_image_size(args.image_size)
        except ValueError as e:
            raise UserError(f"--image-size: {e}") from e
    if args.prompt is not None and not args.prompt.strip():
        raise UserError(
            "--prompt is empty: give some text to continue (or, to caption an image, leave "
            "--prompt out and give --image)"
        )
    if args.chat and args.image is not None:
        raise UserError("--chat is text only: drop --image, or ask about the image without --chat")
    if not args.chat and args.prompt is None and args.image is None:
        raise UserError("nothing to do: give --prompt TEXT, --image FILE (a caption) or --chat")


def fit_image(image, size: int, path: str):
    """The image resized and padded to size x size if it is not already; a note on stderr."""
    from gato.images import describe_fit, resize_and_pad

    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return image
    print(
        f"note: image {path} is {width}x{height}, the model reads it at {size}x{size}: "
        f"{describe_fit(height, width, size)}",
        file=sys.stderr,
    )
    return resize_and_pad(image, size)


def emit(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def stream_reply(generator, tokenizer, max_new_tokens: int, context_ids, stop_at_newline=False):
    """Sample, printing each decoded increment as it comes; return (text, tokens, reason).
    With `stop_at_newline` the reply ends at the first newline (printed, kept in context)."""
    from gato.text_generator import TextStream

    stream = TextStream(tokenizer, context_ids)
    tokens = 0
    for token in generator.generate(max_new_tokens):
        tokens += 1
        piece = stream.push(token)
        if stop_at_newline and "\n" in piece:
            emit(piece[: piece.index("\n") + 1])
            return stream.text, tokens, "newline"
        emit(piece)
    emit(stream.flush())
    return stream.text, tokens, generator.stop_reason


def main(argv: list[str] | None = None) -> int:
    """The command; a mistake in its input is a UserError (one line, exit 2 via run_command)."""
    args, _ = parse_dataclass_args(GenerateArgs, argv, "python -m gato.generate", __doc__)
    check_args(args)
    from gato.images import image_size_for, load_image

    image = load_image(args.image) if args.image is not None else None  # before the model
    import torch

    from gato.checkpoint import CheckpointError, newest_checkpoint
    from gato.cli import load_user_checkpoint
    from gato.text import get_text_tokenizer
    from gato.text_generator import TextGenerator, generation_prompt

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        ckpt_path = args.checkpoint or newest_checkpoint(args.runs_dir)
    except CheckpointError as e:
        raise UserError(str(e)) from e
    model, ckpt = load_user_checkpoint(ckpt_path, device=args.device)
    try:
        tokenizer = get_text_tokenizer()
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from e
    generator = TextGenerator(
        model,
        tokenizer,
        context_tokens=args.context_tokens,
        greedy=args.greedy,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
        use_cache=not args.no_cache,
    )
    sampling = "greedy" if args.greedy or args.temperature == 0 else f"T={args.temperature}"
    sampling += f", top-k {args.top_k}" if args.top_k else ""
    what = "chat" if args.chat else "answer" if image is not None and args.prompt else None
    what = what or ("caption" if image is not None else "continuation")
    print(
        f"{what}: checkpoint {ckpt.path} (step {ckpt.step}), context {generator.context_tokens} "
        f"tokens, {sampling}{', no cache' if args.no_cache else ''}, {args.device}",
        file=sys.stderr,
    )
    if image is not None:
        image = fit_image(image, image_size_for(image, args.image_size), args.image)
    if args.chat:
        return chat(generator, tokenizer, args)
    seq = generation_prompt(tokenizer, args.prompt or "", image)
    if len(seq) > generator.context_tokens:
        print(
            f"note: the prompt holds {len(seq)} tokens, more than the {generator.context_tokens}-"
            "token context: the model sees it through the sliding memory",
            file=sys.stderr,
        )
    try:
        generator.feed(seq)
    except ValueError as e:  # an image and prompt longer than the local positions
        raise UserError(str(e)) from e
    context_ids = tokenizer.encode(args.prompt) if args.prompt else []
    _, tokens, reason = stream_reply(generator, tokenizer, args.max_new_tokens, context_ids)
    emit("\n")
    print(f"({tokens} tokens, stopped: {reason})", file=sys.stderr)
    return 0


def chat(generator, tokenizer, args: GenerateArgs) -> int:
    """The dialogue loop over stdin lines (see the module docstring)."""
    from gato.text_generator import encode_after_newline

    interactive = sys.stdin.isatty()
    if args.prompt:  # the opening context, then a newline before the first turn
        generator.feed_text(args.prompt)
        generator.feed_text("\n", after_newline=True)
    warned = False
    while True:
        if interactive:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            return 0
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        turn = USER_TURN.format(line=line)
        first = generator.context_length == 0  # a turn after a newline reads without its space
        generator.feed_text(turn, after_newline=not first)
        ids = tokenizer.encode(turn) if first else encode_after_newline(tokenizer, turn)
        text, tokens, reason = stream_reply(
            generator, tokenizer, args.max_new_tokens, ids if ids is not None else [], True
        )
        if reason != "newline":  # the turn ends with a newline in the context and on screen
            generator.feed_text("\n", after_newline=True)
            emit("\n")
        if reason != "newline" or interactive:
            print(f"({tokens} tokens, stopped: {reason})", file=sys.stderr)
        if generator.context_length > generator.context_tokens and not warned:
            warned = True
            print(
                f"note: the dialogue is longer than the {generator.context_tokens}-token "
                "context: older turns are seen through the sliding memory",
                file=sys.stderr,
            )


if __name__ == "__main__":
    sys.exit(run_command(main, prog="python -m gato.generate"))
