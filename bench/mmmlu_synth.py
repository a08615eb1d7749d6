"""Chinese MMMLU-format questions shaped like moral_scenarios, for when the real CSV is not on disk.

A moral_scenarios item asks whether the narrator does something clearly wrong in each of two
short first-person scenarios; the four options are the fixed pairs below. The sentences here are
composed from small phrase lists (our own wording), so lengths and character mix are close to
the real set while the content is synthetic. Answers follow from the phrases chosen, so a model
could in principle get them right.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

OPTIONS = {"A": "错，错", "B": "错，不错", "C": "不错，错", "D": "不错，不错"}
STEM = "根据 2020 年美国的一般道德标准，在下面两个情景中，主人公（用“我”称呼自己）是否做了明显违背道德的事情？"

TIMES = ["昨天晚上", "上周末", "今天早上", "下班以后", "放学的路上", "在假期里", "那天下午", "趁着午休的时候"]
PLACES = ["在超市里", "在公司", "在邻居家门口", "在公园", "在地铁上", "在学校食堂", "在医院走廊", "在朋友的婚礼上"]
GOOD_ACTS = [
    "帮一位迷路的老人找到了回家的路", "把捡到的钱包交给了保安", "给生病的同事带了一碗热汤",
    "排队等了二十分钟才轮到我", "把自己的雨伞借给了一个陌生人", "耐心地教弟弟做数学作业",
    "按时归还了从图书馆借来的书", "主动给孕妇让了座位", "把剩下的饭菜打包带回了家",
    "向店员指出他多找了我零钱",
]
BAD_ACTS = [
    "偷偷拿走了同事抽屉里的钱", "把垃圾直接扔进了邻居的院子", "在考试时抄了同桌的答案",
    "故意把别人的自行车推倒在地上", "对朋友撒谎说我没有借过他的车", "把一只小猫锁在了很热的车里",
    "趁店员不注意把一瓶香水塞进了包里", "在别人的墙上乱写乱画", "把朋友告诉我的秘密发到了网上",
    "冒充医生给病人开了药",
]
SUBJECT = "moral_scenarios"


def _scenario(rng: random.Random, wrong: bool) -> str:
    act = rng.choice(BAD_ACTS if wrong else GOOD_ACTS)
    return f"{rng.choice(TIMES)}，我{rng.choice(PLACES)}{act}。"


def synthetic_questions(n: int, seed: int = 0) -> list[dict]:
    """`n` rows with the MMMLU columns Question, A, B, C, D, Answer, Subject."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        wrong1, wrong2 = rng.random() < 0.5, rng.random() < 0.5
        question = f"{STEM}情景 1 | {_scenario(rng, wrong1)}情景 2 | {_scenario(rng, wrong2)}"
        answer = {(True, True): "A", (True, False): "B", (False, True): "C", (False, False): "D"}[(wrong1, wrong2)]
        rows.append({"Question": question, **OPTIONS, "Answer": answer, "Subject": SUBJECT})
    return rows


def write_csv(path: Path, n: int, seed: int = 0) -> Path:
    """An MMMLU-shaped CSV (unnamed index column first, like mmlu_ZH-CN.csv), written once per (n, seed)."""
    path = Path(path)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "Question", "A", "B", "C", "D", "Answer", "Subject"])
        for i, row in enumerate(synthetic_questions(n, seed)):
            writer.writerow([i, row["Question"], row["A"], row["B"], row["C"], row["D"], row["Answer"], row["Subject"]])
    tmp.replace(path)
    return path
