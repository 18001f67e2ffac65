"""A tiny German-English corpus written in the official WMT raw layouts: for tests and smoke runs.

It writes the same files the real releases contain (plain parallel text for
the training corpora and newstest2013, SGML for newstest2014), so the real
preparation command reads it unchanged and marks the result as a subset.

Usage: python -m workloads.wmt.sample_data --raw-dir RAW [--copies 3]
       python -m workloads.wmt.prepare --data-dir DIR --raw-dir RAW --vocab-size 200 --max-length 64
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from workloads.wmt.raw_format import EVAL_SOURCES, TRAIN_CORPORA, Pair, ParallelFiles

SENTENCES: List[Pair] = [
    ("Das Haus ist klein.", "The house is small."),
    ("Der Zug kommt um acht Uhr an.", "The train arrives at eight o'clock."),
    ("Wir haben heute keine Zeit.", "We have no time today."),
    ("Die Kommission hat einen neuen Bericht vorgelegt.", "The Commission has presented a new report."),
    ("Ich danke Ihnen für Ihre Aufmerksamkeit.", "Thank you for your attention."),
    ("Das Parlament stimmt morgen über den Vorschlag ab.", "Parliament votes on the proposal tomorrow."),
    ("Die Preise sind im letzten Jahr gestiegen.", "Prices rose last year."),
    ("Sie liest jeden Abend ein Buch.", "She reads a book every evening."),
    ("Der Bericht wurde mit großer Mehrheit angenommen.", "The report was adopted by a large majority."),
    ("Es regnet seit drei Tagen.", "It has been raining for three days."),
    ("Die Regierung muss mehr für die Umwelt tun.", "The government must do more for the environment."),
    ("Mein Bruder arbeitet in einem Krankenhaus.", "My brother works in a hospital."),
    ("Wir müssen diese Frage sorgfältig prüfen.", "We must examine this question carefully."),
    ("Die Stadt hat eine neue Brücke gebaut.", "The city has built a new bridge."),
    ("Der Hund schläft unter dem Tisch.", "The dog is sleeping under the table."),
    ("Die Verhandlungen dauerten bis spät in die Nacht.", "The negotiations lasted late into the night."),
    ("Kinder spielen gern im Garten.", "Children like to play in the garden."),
    ("Das Museum ist montags geschlossen.", "The museum is closed on Mondays."),
    ("Die Mitgliedstaaten haben sich auf einen Kompromiss geeinigt.", "The Member States have agreed on a compromise."),
    ("Er hat den Schlüssel verloren.", "He has lost the key."),
    ("Die Arbeitslosigkeit ist im Süden höher.", "Unemployment is higher in the south."),
    ("Wir fahren im Sommer an das Meer.", "We are going to the sea in the summer."),
    ("Der Minister beantwortete alle Fragen.", "The minister answered all the questions."),
    ("Das Wetter wird morgen besser.", "The weather will be better tomorrow."),
    ("Die Firma hat zwanzig neue Mitarbeiter eingestellt.", "The company has hired twenty new employees."),
    ("Ich trinke meinen Kaffee ohne Zucker.", "I drink my coffee without sugar."),
    ("Die Schule beginnt im September.", "School starts in September."),
    ("Der Rat hat den Haushalt noch nicht genehmigt.", "The Council has not yet approved the budget."),
    ("Sie wohnt seit zehn Jahren in Berlin.", "She has lived in Berlin for ten years."),
    ("Die Polizei sucht nach Zeugen.", "The police are looking for witnesses."),
    ("Wir brauchen eine gemeinsame Lösung.", "We need a common solution."),
    ("Das Konzert war ausverkauft.", "The concert was sold out."),
]
# Held out from training, as newstest is.
VALIDATION: List[Pair] = [
    ("Der Bericht ist sehr lang.", "The report is very long."),
    ("Wir haben morgen eine Sitzung.", "We have a meeting tomorrow."),
    ("Die Kinder schlafen schon.", "The children are already asleep."),
    ("Das Parlament hat den Bericht angenommen.", "Parliament has adopted the report."),
    ("Die Stadt ist im Sommer voll.", "The city is full in the summer."),
]
TEST: List[Pair] = [
    ("Der Minister kommt morgen nach Berlin.", "The minister comes to Berlin tomorrow."),
    ("Die Preise sind sehr hoch.", "The prices are very high."),
    ("Sie arbeitet in einer Schule.", "She works in a school."),
    ("Wir müssen mehr für die Kinder tun.", "We must do more for the children."),
    ("Das Haus hat einen Garten.", "The house has a garden."),
    ("Es regnet heute.", "It is raining today."),
]


def write_plain(raw_dir: Path, files: ParallelFiles, pairs: Sequence[Pair]) -> None:
    """One sentence per line, line i of the German file aligned with line i of the English file."""
    for name, side in ((files.german, 0), (files.english, 1)):
        (raw_dir / name).write_text("".join(pair[side] + "\n" for pair in pairs), encoding="utf-8")


def write_sgml(raw_dir: Path, files: ParallelFiles, pairs: Sequence[Pair], set_id: str) -> None:
    """The newstest SGML layout: a srcset/refset with documents of numbered <seg> lines."""
    for name, side, kind, language in ((files.german, 0, "srcset", "de"), (files.english, 1, "refset", "en")):
        lines = [f'<{kind} setid="{set_id}" srclang="any" trglang="{language}">',
                 f'<doc sysid="{"ref" if side else "src"}" docid="sample-doc" genre="news" origlang="de">', "<p>"]
        lines += [f'<seg id="{number}">{pair[side]}</seg>' for number, pair in enumerate(pairs, start=1)]
        lines += ["</p>", "</doc>", f"</{kind}>"]
        (raw_dir / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_raw_dir(raw_dir: Path, copies: int = 3, corpora: Sequence[str] = ("europarl_v7", "newscommentary_v12"),
                  extra_train: Optional[Dict[str, Sequence[Pair]]] = None) -> Path:
    """Writes `copies` passes over the sample sentences split across `corpora`, plus the two newstest sets."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    chosen = [corpus for corpus in TRAIN_CORPORA if corpus.name in corpora]
    for index, corpus in enumerate(chosen):
        pairs = [pair for copy in range(copies) for pair in SENTENCES[index :: len(chosen)]]
        pairs += list((extra_train or {}).get(corpus.name, ()))
        write_plain(raw_dir, corpus, pairs)
    write_plain(raw_dir, EVAL_SOURCES["validation"][0], VALIDATION)
    write_sgml(raw_dir, EVAL_SOURCES["test"][0], TEST, "newstest2014")
    return raw_dir


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads.wmt.sample_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-dir", required=True)
    parser.add_argument("--copies", type=int, default=3, help="passes over the sample sentences in the training files")
    args = parser.parse_args(argv)
    write_raw_dir(Path(args.raw_dir), args.copies)
    print(f"sample WMT raw files written to {args.raw_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
