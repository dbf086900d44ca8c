"""``avvp config-doc``: regenerate config.yaml and docs/configuration.md from the settings schema."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("config-doc", help="write config.yaml (the default config, commented) and "
                                          "docs/configuration.md (the settings reference) from the "
                                          "settings definition, avvp/config.schema.yaml",
                       description="Both files are generated: edit the schema, never the files, then "
                                   "run this command (from the repository root, or give --root).")
    p.add_argument("--root", default=".", help="repository root the files are written under (default: .)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 naming each file that differs from what would be written")
    p.set_defaults(func=run, provenance_inputs=lambda args: [])


def run(args) -> int:
    from avvp.config_doc import generated, write

    if args.check:
        stale = [path for path, text in generated(args.root).items()
                 if not path.is_file() or path.read_text() != text]
        for path in stale:
            print(f"{path}: differs from the settings schema; run `avvp config-doc`")
        return 1 if stale else 0
    for path in write(args.root):
        print(f"wrote {path}")
    return 0
