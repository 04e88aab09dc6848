"""Built-in text: the corpus the fixture tokenizers are trained on, and the pool of prompts.

Written for this project (no outside text), so the fixtures carry no third-party content.
The corpus is mostly English with some accented Latin, Greek, Cyrillic and CJK; characters that are
rare here (emoji, most CJK) stay out of the Llama-style tokenizer's alphabet on purpose, so the
fixtures exercise its byte fallback (<0xNN> tokens).
"""

CORPUS = """\
The quick brown fox jumps over the lazy dog while the small cat sleeps in the warm sun.
A model reads a prompt, turns it into tokens, and predicts the next token one step at a time.
Every request in the batch has its own adapter, its own sampling settings and its own length.
The server keeps the cache of keys and values in fixed blocks, so that long prompts can share memory.
When the cache is full, the scheduler waits, or it moves a request out and brings it back later.
The engine runs on the graphics card, and the reference runs on the processor with the same weights.
Tests compare the log probabilities of the prompt and the greedy tokens that follow it.
Small numbers, large numbers, and numbers like 3.14, 42, 1000 and 2024 appear in the text as well.
She said: "Hello, world!" and he answered: "Good morning; how are you today?"
The river runs through the valley, past the old mill, under the stone bridge and into the sea.
In the morning the baker opens the shop, and the smell of fresh bread fills the quiet street.
Learning rate, batch size, warmup steps and weight decay are the usual settings of a training run.
The attention of each head looks back over the previous tokens inside its window.
A rotary embedding turns pairs of numbers by an angle that grows with the position of the token.
The adapter adds a low rank product to the weight: first a shrink to the rank, then an expand back.
Matrices, vectors and tensors are stored in memory as long rows of floating point numbers.
They walked to the market, bought apples, pears and cheese, and came home before the rain.
This is a test of the tokenizer, with words that repeat: test, tests, testing, tested, tester.
Café, naïve, façade, résumé and jalapeño are words that English borrowed from other languages.
Über den Wolken muss die Freiheit wohl grenzenlos sein, sagt das Lied.
Le cœur a ses raisons que la raison ne connaît point.
El niño pequeño come una manzana en la cocina.
Η γλώσσα είναι ένα σύστημα επικοινωνίας.
Привет, как дела? Всё хорошо, спасибо.
日本語の文章も少しだけ含まれています。
Temperatures of −5 °C or 25 °C, prices of 10 € or £7, and distances of 3 km or 2½ miles.
The end of a document is marked by a special token, and the next document starts after it.
Write clearly, test often, and keep each file small enough to read in one sitting.
"""

# Candidate prompts, by slot. make-fixtures.py takes for each slot the first candidate whose token
# count falls in the slot's range for that tokenizer and whose greedy margins are large enough.
# Slots: (name, min tokens, max tokens, needs non-ASCII).
SLOTS = [
    ("short", 3, 8, False),
    ("short-unicode", 3, 14, True),
    ("medium", 9, 19, False),
    ("medium-unicode", 9, 24, True),
    ("long", 20, 40, False),
    ("long-unicode", 20, 40, True),
]

PROMPTS = [
    # short
    "The cat",
    "Hello world",
    "A small test",
    "The river runs",
    "Good morning",
    "Numbers like 42",
    "The engine runs on",
    # short with unicode
    "Café au lait",
    "Привет, мир",
    "Über alles",
    "日本語",
    "Ça va? 🙂",
    "Le cœur",
    "naïve façade",
    # medium
    "The quick brown fox jumps over the lazy dog.",
    "A model reads a prompt and predicts the next token.",
    "They walked to the market and bought apples.",
    "The server keeps the cache in fixed blocks of memory.",
    "In the morning the baker opens the shop.",
    "Tests compare the log probabilities of the prompt.",
    "Write clearly and test often.",
    # medium with unicode
    "Le cœur a ses raisons, dit-il, et le café est chaud.",
    "Η γλώσσα είναι ένα σύστημα.",
    "Temperatures of −5 °C or 25 °C in the valley.",
    "El niño pequeño come una manzana 🍎.",
    "Привет, как дела? Всё хорошо.",
    "Über den Wolken, sagt das Lied, ist alles grenzenlos.",
    # long
    "The river runs through the valley, past the old mill, under the stone bridge and into the sea, "
    "while the small cat sleeps in the warm sun.",
    "Every request in the batch has its own adapter, its own sampling settings and its own length, "
    "and the scheduler decides which of them run in the next step.",
    "When the cache is full, the scheduler waits, or it moves a request out and brings it back later, "
    "so that no request is lost.",
    "Learning rate, batch size, warmup steps and weight decay are the usual settings of a training run, "
    "and the loss goes down.",
    "Matrices, vectors and tensors are stored in memory as long rows of floating point numbers, one after "
    "the other.",
    # long with unicode
    "Café, naïve, façade, résumé and jalapeño are words that English borrowed; Über den Wolken "
    "is German, and 日本語 is Japanese.",
    "She said: «Привет, как дела?» and he answered: «Всё хорошо, спасибо», then they walked to the market "
    "for bread.",
    "Temperatures of −5 °C or 25 °C, prices of 10 € or £7, and distances of 3 km or 2½ miles are "
    "written in many ways 🙂.",
    "Η γλώσσα είναι ένα σύστημα επικοινωνίας, and the model reads it token by token, byte by byte when "
    "it must.",
    "Le cœur a ses raisons que la raison ne connaît point, and the small cat still sleeps in the warm sun "
    "of the valley.",
]
