"""Tokenizer, chat templates, incremental detokenization and stop strings (no C++ needed)."""

from __future__ import annotations

import json
import random

import pytest

from pagedllm.chat_template import ChatTemplateError
from pagedllm.demo import write_demo_model
from pagedllm.detokenizer import IncrementalDetokenizer, find_stop_string, partial_stop_length
from pagedllm.tokenizer import Tokenizer

MULTIBYTE = "Grüße, 世界! Ünïcödé 🎉🚀 naïve café — ελληνικά"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo")
    write_demo_model(str(path))
    return path


@pytest.fixture(scope="module")
def tok(demo_dir):
    return Tokenizer(str(demo_dir))


def _copy_tokenizer(demo_dir, dest, config_changes=None):
    dest.mkdir(exist_ok=True)
    (dest / "tokenizer.json").write_bytes((demo_dir / "tokenizer.json").read_bytes())
    config = json.loads((demo_dir / "tokenizer_config.json").read_text())
    config.update(config_changes or {})
    (dest / "tokenizer_config.json").write_text(json.dumps(config))
    return dest


def test_round_trip_bytes(tok):
    ids = tok.encode("Hi there")
    assert ids == [tok.bos_token_id] + list(b"Hi there")
    assert tok.encode("Hi", add_special_tokens=False) == list(b"Hi")
    assert tok.decode(ids) == "Hi there"
    assert tok.decode(ids, skip_special_tokens=False) == "<s>Hi there"


def test_round_trip_multibyte(tok):
    ids = tok.encode(MULTIBYTE, add_special_tokens=False)
    assert ids == list(MULTIBYTE.encode("utf-8"))
    assert tok.decode(ids) == MULTIBYTE


def test_special_tokens(tok):
    assert (tok.bos_token, tok.eos_token) == ("<s>", "</s>")
    assert (tok.bos_token_id, tok.eos_token_id) == (256, 257)
    assert tok.all_special_ids == [256, 257]
    assert len(tok) == 258
    assert tok.encode("a</s>", add_special_tokens=False) == [97, 257]
    assert tok.decode_token(257) == "</s>"


def test_add_bos_token_false_strips_bos(demo_dir, tmp_path):
    path = _copy_tokenizer(demo_dir, tmp_path / "nobos", {"add_bos_token": False})
    assert Tokenizer(str(path)).encode("ab") == [97, 98]


def test_missing_tokenizer_json_is_clear(tmp_path):
    (tmp_path / "tokenizer.model").write_bytes(b"\0")
    with pytest.raises(FileNotFoundError, match="tokenizer.json") as info:
        Tokenizer(str(tmp_path))
    assert "SentencePiece" in str(info.value)


def test_corrupt_tokenizer_json(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer.json"):
        Tokenizer(str(tmp_path))


def test_demo_chat_template(tok):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = tok.apply_chat_template(messages)
    assert text == "<s><|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n"
    no_prompt = tok.apply_chat_template(messages, add_generation_prompt=False)
    assert no_prompt == "<s><|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n"
    ids = tok.apply_chat_template(messages, tokenize=True)
    assert ids[0] == 256 and ids.count(256) == 1
    assert ids == tok.encode(text, add_special_tokens=False)


def test_chat_template_argument_and_helpers(tok):
    template = (
        "{% for m in messages %}"
        "{% if m['role'] not in ['user', 'assistant'] %}"
        "{{ raise_exception('bad role ' + m['role']) }}"
        "{% endif %}"
        "{{ m['role'] }}: {{ m['content'] | tojson }}\n"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ eos_token }}{% endif %}")
    messages = [{"role": "user", "content": "héllo \"x\""}]
    assert tok.apply_chat_template(messages, chat_template=template) == \
        'user: "héllo \\"x\\""\n</s>'
    with pytest.raises(ValueError, match="bad role tool"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], chat_template=template)
    with pytest.raises(ChatTemplateError, match="invalid chat template"):
        tok.apply_chat_template(messages, chat_template="{% for %}")


def test_trim_and_lstrip_blocks(tok):
    template = ("{% for m in messages %}\n    {% if true %}\n[{{ m['content'] }}]\n"
                "    {% endif %}\n{% endfor %}")
    assert tok.apply_chat_template([{"role": "user", "content": "a"},
                                    {"role": "user", "content": "b"}],
                                   chat_template=template) == "[a]\n[b]\n"


def test_content_parts_are_joined(tok):
    messages = [{"role": "user", "content": [{"type": "text", "text": "a"},
                                             {"type": "text", "text": "b"}]}]
    assert tok.apply_chat_template(messages, add_generation_prompt=False) == \
        "<s><|user|>\na\nb</s>\n"


def test_continue_final_message(tok):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]
    text = tok.apply_chat_template(messages, add_generation_prompt=False,
                                   continue_final_message=True)
    assert text == "<s><|user|>\nHi</s>\n<|assistant|>\nHel"


def test_list_form_and_jinja_file_templates(demo_dir, tmp_path):
    listed = [{"name": "default", "template": "D{{ messages|length }}"},
              {"name": "tool_use", "template": "T{{ tools|length }}"}]
    path = _copy_tokenizer(demo_dir, tmp_path / "listed", {"chat_template": listed})
    tok = Tokenizer(str(path))
    messages = [{"role": "user", "content": "x"}]
    assert tok.apply_chat_template(messages) == "D1"
    assert tok.apply_chat_template(messages, tools=[{"name": "f"}]) == "T1"
    assert tok.apply_chat_template(messages, chat_template="tool_use") == "T0"
    (path / "chat_template.jinja").write_text("J{{ bos_token }}")
    assert Tokenizer(str(path)).apply_chat_template(messages) == "J<s>"


def test_no_chat_template_is_clear(demo_dir, tmp_path):
    path = _copy_tokenizer(demo_dir, tmp_path / "none")
    config = json.loads((path / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no chat template"):
        Tokenizer(str(path)).apply_chat_template([{"role": "user", "content": "x"}])


def _stream(tok, prompt_ids, output_ids, chunk=1, finish=True, **kwargs):
    detok = IncrementalDetokenizer(tok, prompt_ids, **kwargs)
    visible = []
    for start in range(0, len(output_ids), chunk):
        last = start + chunk >= len(output_ids)
        detok.update(output_ids[start:start + chunk], finished=finish and last)
        visible.append(detok.visible_text(finished=(finish and last) or detok.stopped))
        if detok.stopped:
            break
    return detok, visible


def _deltas(visible):
    out, previous = [], ""
    for text in visible:
        assert text.startswith(previous), (previous, text)
        out.append(text[len(previous):])
        previous = text
    return out


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_incremental_multibyte_matches_full_decode(tok, chunk):
    prompt = tok.encode("Q: ")
    output = tok.encode(MULTIBYTE, add_special_tokens=False)
    detok, visible = _stream(tok, prompt, output, chunk=chunk)
    deltas = _deltas(visible)
    assert "".join(deltas) == tok.decode(output) == MULTIBYTE
    assert all("\ufffd" not in d for d in deltas)
    assert detok.output_text == MULTIBYTE


def test_incremental_holds_incomplete_character_until_finished(tok):
    output = list("é".encode()) + list("😀".encode())[:2]
    detok = IncrementalDetokenizer(tok, tok.encode("x"))
    texts = []
    for token_id in output:
        detok.update([token_id])
        texts.append(detok.output_text)
    assert texts == ["", "é", "é", "é"]
    detok.update([], finished=True)
    assert detok.output_text == tok.decode(output)


def test_incremental_skips_special_tokens(tok):
    output = [104, 257, 105]
    _, visible = _stream(tok, [256], output)
    assert visible[-1] == "hi"
    _, visible = _stream(tok, [256], output, skip_special_tokens=False)
    assert visible[-1] == "h</s>i"


def test_incremental_keeps_leading_space_of_sentencepiece_style_tokens():
    from tokenizers import Tokenizer as FastTokenizer, decoders, models

    vocab = {"<unk>": 0, "▁Hello": 1, "▁world": 2, "!": 3}
    fast = FastTokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    fast.decoder = decoders.Metaspace()

    class Words:
        def decode(self, ids, skip_special_tokens=True):
            return fast.decode(list(ids), skip_special_tokens=skip_special_tokens)

    detok, _ = _stream(Words(), [1], [2, 3])
    assert detok.output_text == " world!"


def test_stop_string_across_token_boundaries(tok):
    output = tok.encode("Hello world, goodbye", add_special_tokens=False)
    detok, visible = _stream(tok, [256], output, stop=["o w"])
    assert detok.stop_reason == "o w"
    assert detok.output_text == "Hell"
    assert visible[-1] == "Hell"
    _deltas(visible)


def test_stop_string_included(tok):
    output = tok.encode("Hello world, goodbye", add_special_tokens=False)
    detok, visible = _stream(tok, [256], output, stop=["world"], include_stop_str_in_output=True)
    assert detok.output_text == "Hello world"
    assert visible[-1] == "Hello world"
    _deltas(visible)


def test_stop_string_in_multi_char_chunk_truncates_after_it(tok):
    detok = IncrementalDetokenizer(tok, [256], stop=["b"], include_stop_str_in_output=True)
    assert detok.update(tok.encode("aabcc", add_special_tokens=False)) == "b"
    assert detok.output_text == "aab"


def test_first_completed_stop_string_wins(tok):
    detok = IncrementalDetokenizer(tok, [256], stop=["cd", "bc"])
    assert detok.update(tok.encode("abcde", add_special_tokens=False)) == "bc"
    assert detok.output_text == "a"
    detok = IncrementalDetokenizer(tok, [256], stop=["abcd", "bc", "xbc"])
    assert detok.update(tok.encode("xabcd", add_special_tokens=False)) == "bc"
    detok = IncrementalDetokenizer(tok, [256], stop=["bc", "abc"])
    assert detok.update(tok.encode("abc", add_special_tokens=False)) == "abc"


def test_stop_string_in_prompt_is_ignored(tok):
    detok, _ = _stream(tok, tok.encode("STOP"), tok.encode("OK", add_special_tokens=False),
                       stop=["STOP"])
    assert detok.stop_reason is None and detok.output_text == "OK"


def test_stop_strings_wait_for_min_tokens(tok):
    detok, _ = _stream(tok, [256], tok.encode("ab ab", add_special_tokens=False),
                       stop=["ab"], min_tokens=2)
    assert detok.stop_reason == "ab"
    assert detok.output_text == "ab "


def test_hold_back_only_what_could_start_a_stop_string(tok):
    detok = IncrementalDetokenizer(tok, [256], stop=["\n\n", "END"])
    detok.update(tok.encode("Hello", add_special_tokens=False))
    assert detok.visible_text(finished=False) == "Hello"
    detok.update(tok.encode("\nEN", add_special_tokens=False))
    assert detok.visible_text(finished=False) == "Hello\n"
    detok.update(tok.encode("x", add_special_tokens=False))
    assert detok.visible_text(finished=False) == "Hello\nENx"
    detok.update(tok.encode("\n", add_special_tokens=False), finished=True)
    assert detok.visible_text(finished=True) == "Hello\nENx\n"


def test_streamed_text_is_never_cut_later(tok):
    rng = random.Random(7)
    alphabet = "ab c\né"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        stop = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
                for _ in range(rng.randint(1, 3))]
        include = rng.random() < 0.5
        output = tok.encode(text, add_special_tokens=False)
        detok, visible = _stream(tok, [256], output, chunk=rng.randint(1, 3), stop=stop,
                                 include_stop_str_in_output=include)
        _deltas(visible)
        assert visible[-1] == detok.output_text
        assert "\ufffd" not in detok.output_text
        matches = [(text.find(s) + len(s), text.find(s), s) for s in stop if s in text]
        if matches:
            end, start, first = min(matches)
            assert detok.stop_reason == first
            assert detok.output_text == text[:end if include else start]
        else:
            assert detok.output_text == text


def test_find_stop_string_and_partial_length():
    assert find_stop_string("abcdef", 2, ["cde"]) == ("cde", 2)
    assert find_stop_string("abcdef", 6, ["cdef", "bcd"]) == ("bcd", 1)
    assert find_stop_string("abcdef", 1, ["cd"]) is None
    assert find_stop_string("abcdef", 0, ["ef"]) is None
    assert partial_stop_length("hello\nE", ["\n\n", "END"]) == 1
    assert partial_stop_length("hello\nEN", ["\n\n", "END"]) == 2
    assert partial_stop_length("hello", ["\n\n"]) == 0
    assert partial_stop_length("aaa", ["aaaa"]) == 3
