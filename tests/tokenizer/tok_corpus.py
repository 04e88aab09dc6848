"""Deterministic (seeded) text corpus for the tokenizer parity tests.

`corpus(extra_tokens)` returns >= 1000 strings covering many scripts, whitespace
shapes, numbers, emoji (ZWJ sequences, skin tones), combining marks, code, URLs,
control characters and special-token strings written inside text.
"""
import random

SEED = 20240611

SAMPLES = [
    "Hello world", "Hello, world!", " leading space", "trailing space ", "  two leading", "double  space",
    "tabs\tinside\t\ttext", "line1\nline2", "crlf\r\nline", "\r\n", "\n\n\n", "   ", "\t", " ", "",
    "Ça va? Très bien, merci. Où est l'hôtel?", "Straße über Bäume, naïve café, fiancée", "ÀÉÎÕÜ àéîõü ñ Ñ ç",
    "Ελληνικά: Καλημέρα κόσμε, ΣΊΣΥΦΟΣ σίσυφος", "Русский текст: Привет, мир! ЁЖИК ёжик", "Українська: Ґанок, їжак",
    "العربية: مرحبا بالعالم، كيف حالك؟", "עברית: שלום עולם", "हिन्दी: नमस्ते दुनिया, क्षत्रिय", "ไทย: สวัสดีชาวโลก ภาษาไทย",
    "中文：你好，世界！我们在测试分词器。", "日本語：こんにちは世界、カタカナ、ｶﾀｶﾅ", "한국어: 안녕하세요 세계, 한글 ㄱㄴㄷ",
    "Tiếng Việt: Xin chào thế giới", "Türkçe: İstanbul ıİiI", "Polski: Zażółć gęślą jaźń", "Čeština: Příliš žluťoučký kůň",
    "0", "42", "3.14159", "1,000,000", "12345678901234567890", "-17 +23 1e10 0x1F 0b1010", "٣٤٥ ١٢ ४५६ ๑๒๓",
    "phone: +1 (555) 123-4567", "2024-06-11T10:20:30Z", "v1.2.3-rc.4",
    "emoji: 😀😃😄 👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷🇯🇵", "👨🏿‍💻 and 🧑🏻‍🚀", "✔✘★☆", "🙂" * 8,
    "e\u0301 a\u0300 o\u0308 n\u0303", "Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o", "\u0915\u094d\u0937",
    "\ufffd", "a\ufffdb", "\ufffd\ufffd", "\u200b zero\u200bwidth \u200d\u200c", "\ufeffBOM", "\u00a0nbsp\u00a0",
    "\u3000ideographic\u3000space", "\u2028line sep\u2029para sep", "\x00\x01\x02 control \x07\x1b[0m", "\x7f\x85\x9f",
    "https://example.com/path?query=1&x=y#frag", "mailto:someone@example.org", "C:\\Users\\name\\file.txt",
    "def f(x):\n    return x ** 2  # square\n", "int main() { printf(\"%d\\n\", 42); return 0; }",
    "<html><body class=\"x\">Hi &amp; bye</body></html>", "{\"key\": [1, 2, {\"nested\": null}]}",
    "SELECT * FROM users WHERE id = 1;", "for (let i = 0; i < 10; i++) {}", "$ echo $HOME | grep -v '^#'",
    "I'm we're they've she'll he'd it's DON'T I'M WE'RE", "'s 't 're 've 'm 'll 'd", "ſ K Å ǅ",
    "supercalifragilisticexpialidocious" * 3, "a" * 300, "ab" * 200, "🙂" * 60, "日本" * 100, " " * 40, "\n" * 20,
    "word.word,word;word:word!word?", "...---...", "!!!???", "((()))[[]]{{}}", "___---===+++",
    "<|endoftext|>", "<s>", "</s>", "<unk>", "<pad>", "<bos>", "<eos>", "<|im_start|>", "<|im_end|>",
    "<|begin_of_text|>", "<|end_of_text|>", "<start_of_turn>", "<end_of_turn>", "<mask>",
    "text<|endoftext|>more", "<s>[INST] hi [/INST]", "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
    "a <s> b </s> c", " <s>", "<s> ", "<<s>>", "<s><s></s>", "<|endoftext|><|endoftext|>", "x<|im_end|>y",
    "<start_of_turn>user\nHi<end_of_turn>\n", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
]

POOLS = {
    "latin": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZàáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßœŒ",
    "greek": "αβγδεζηθικλμνξοπρστυφχψωςΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩάέήίόύώ",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯіїєґ",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي،؛؟ءآأؤإئة",
    "hebrew": "אבגדהוזחטיכלמנסעפצקרשתךםןףץ",
    "devanagari": "अआइईउऊऋएऐओऔकखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसह्ािीुूृेैोौंःँ",
    "thai": "กขฃคฅฆงจฉชซฌญฎฏฐฑฒณดตถทธนบปผฝพฟภมยรฤลฦวศษสหฬอฮะัาำิีึืฺุู฿เแโใไๅๆ็่้๊๋์",
    "cjk": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长",
    "hangul": "가나다라마바사아자차카타파하각난닫랄맘밥삿앙잦찿캌탙팦핳한국어글",
    "kana": "あいうえおかきくけこさしすせそアイウエオカキクケコｱｲｳｴｵー",
    "digits": "0123456789",
    "punct": ".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`",
    "space": [" ", " ", " ", "  ", "\t", "\n", "\r\n", " \n", "\u00a0", "\u3000"],
    "emoji": ["😀", "👍", "👍🏻", "👍🏿", "👩‍💻", "👨‍👩‍👧", "🏳️‍🌈", "❤️", "🇺🇸", "🎉", "🤖", "🧠", "🫠", "✨"],
    "marks": ["\u0301", "\u0300", "\u0308", "\u0327", "\u0303", "\u20dd", "\u0651", "\u05b8", "\u093c", "\u0e31"],
    "controls": ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1f", "\x7f", "\x85", "\u200b", "\ufeff", "\ufffd"],
}


def _word(rng, pool):
    chars = POOLS[pool]
    return "".join(rng.choice(chars) for _ in range(rng.randint(1, 12)))


def _mixed(rng, specials):
    parts = []
    for _ in range(rng.randint(1, 14)):
        r = rng.random()
        if r < 0.55:
            parts.append(_word(rng, rng.choice(["latin", "greek", "cyrillic", "arabic", "hebrew", "devanagari",
                                                 "thai", "cjk", "hangul", "kana", "latin", "latin"])))
        elif r < 0.65:
            parts.append("".join(rng.choice(POOLS["digits"]) for _ in range(rng.randint(1, 25))))
        elif r < 0.73:
            parts.append("".join(rng.choice(POOLS["punct"]) for _ in range(rng.randint(1, 4))))
        elif r < 0.80:
            parts.append("".join(rng.choice(POOLS["emoji"]) for _ in range(rng.randint(1, 3))))
        elif r < 0.85:
            parts.append(_word(rng, "latin") + rng.choice(POOLS["marks"]))
        elif r < 0.89:
            parts.append(rng.choice(POOLS["controls"]))
        elif r < 0.95 and specials:
            parts.append(rng.choice(specials))
        else:
            parts.append(rng.choice(SAMPLES))
        parts.append(rng.choice(POOLS["space"]) if rng.random() < 0.8 else "")
    text = "".join(parts)
    if rng.random() < 0.2:
        text = " " * rng.randint(1, 3) + text
    if rng.random() < 0.2:
        text = text + rng.choice([" ", "  ", "\n", "\t"])
    return text


def _random_codepoints(rng):
    ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF), (0x600, 0x6FF),
              (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x3040, 0x30FF),
              (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x1F300, 0x1F6FF), (0x0, 0x1F)]
    out = []
    for _ in range(rng.randint(1, 30)):
        lo, hi = rng.choice(ranges)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def corpus(specials=(), size=1100):
    """The generic samples, then seeded random mixes; `specials` are token strings to embed."""
    rng = random.Random(SEED)
    specials = list(specials)
    texts = list(SAMPLES)
    texts += [f"x {s} y" for s in specials[:40]] + [f"{s}{s}" for s in specials[:10]]
    while len(texts) < size:
        texts.append(_mixed(rng, specials) if rng.random() < 0.8 else _random_codepoints(rng))
    long_text = "".join(_mixed(rng, specials) for _ in range(60))
    texts.append(long_text)
    return texts


def random_id_lists(vocab_size, extra_ids=(), count=300, seed=SEED):
    """Seeded random id sequences for decode parity (include some `extra_ids`, e.g. specials and bytes)."""
    rng = random.Random(seed + vocab_size)
    extra_ids = list(extra_ids)
    out = []
    for _ in range(count):
        ids = []
        for _ in range(rng.randint(1, 24)):
            if extra_ids and rng.random() < 0.3:
                ids.append(rng.choice(extra_ids))
            else:
                ids.append(rng.randrange(vocab_size))
        out.append(ids)
    return out
