"""Character sets of the built-in glyph tasks and of the (disjoint) pretraining corpus.

The pretraining corpus must not teach the built-in root anything it is later evaluated on, so
besides being disjoint by code point from every task's classes, it leaves out look-alikes
(homoglyphs) of task classes, screened by eye on the DejaVu/STIX renderings: e.g. Latin o/x/v/u
(vs O, X, V, U, omicron, chi, nu, upsilon), Cyrillic А/В/Е/К/М/Н/О/Р/С/Т/Х (Latin capitals),
З (3), Ф (phi), Armenian Օ/Ս/Լ/Ո, Arabic alef (I, 1), tatweel (minus), check mark (sqrt), ...
"""

from __future__ import annotations

GLYPH_DIGITS = tuple("0123456789")
GLYPH_LATIN = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
GLYPH_GREEK = tuple("αβγδεζηθικλμνξοπρστυφχψω")
# No mirror pairs (e.g. only "→", "≤"), so a horizontal flip never maps one class onto another.
GLYPH_SYMBOLS = tuple("+−×÷=≠≈±∞√∫∂∇∑∈∀→↕≤∩")

PRETRAIN_GROUPS: dict[str, str] = {
    "latin_lowercase": "abdefhmrt",
    "cyrillic": "БГДЖЙЛЦШЩЪЫЬЭЮЂЋЉЊЏҐѢ",
    "hebrew": "בגהיכלמנעפצקתםףץ",
    "arabic": "بةتثجحخدذرزسشصضطظفقكلنىي",
    "georgian": "ადეკლმჟრსტუფქღშჩცძწჭხჯ",
    "armenian": "ԱԲԳԴԵԸԹԺԻԽԾԿՀՂՃՄՆՇՋՌՎՐՔՖ",
    "pictographs": "♠♣♥♦★☆☺♪♫⌘¬∴∵⊕⊗⊥◊●□■△▲◆♀♂⚓☂☀☎✈✂⌂",
    "punctuation": "&@#%?§¶‡*^{}[]();:¿«»‰£¢©®™",
}
PRETRAIN_GLYPHS = tuple(ch for group in PRETRAIN_GROUPS.values() for ch in group)

# Characters considered for the pretraining corpus and left out as look-alikes of task classes.
PRETRAIN_EXCLUDED = tuple(
    "cgijklnopqsuvwxyz"  # Latin lowercase
    "АВЕЁЗИКМНОПРСТУФХЧЯ"  # Cyrillic
    "אדוזחטסרשןך"  # Hebrew
    "اـعغمهو"  # Arabic
    "ბგვზთინოპყჰ"  # Georgian
    "ԶԷԼՁՅՈՉՊՍՏՑՒՓՕ"  # Armenian
    "✓✗∧∝∠☼"  # pictographs
    "$¥†€/\\|~!¡"  # punctuation
)
