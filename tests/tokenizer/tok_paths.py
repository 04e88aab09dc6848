"""The tokenizer.json files that must match the Python `tokenizers` library."""
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]


def tokenizer_files(shared):
    files = []
    for name in ["gpt2", "llama2", "llama3", "qwen3", "gemma3"]:
        files.append(pathlib.Path(shared) / "tokenizers" / name / "tokenizer.json")
    files += sorted((REPO / "tests" / "fixtures").glob("**/tokenizer.json"))
    demo = REPO / "models" / "demo" / "tokenizer.json"
    if demo.exists():
        files.append(demo)
    return files


def label(path):
    path = pathlib.Path(path)
    try:
        return str(path.parent.relative_to(REPO))
    except ValueError:
        return path.parent.name
