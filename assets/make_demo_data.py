"""Rebuild llmlab's offline demo data in core/demo_data/ (`python assets/make_demo_data.py`): stdlib only, fixed seeds, same bytes each run.

* exams_demo.csv     - 108 multiple-choice rows in the MMMLU CSV shape (unnamed index column, Question,A,B,C,D,Answer,Subject),
                       6 subjects x 18 (3 English, 3 Chinese); arithmetic is computed, facts are simple and true. CSV traps on
                       purpose: a question with a comma and double quotes, one with a newline, options literally `None`/`NA`.
* squad_demo.json    - official SQuAD v1.1 nested JSON: 7 invented paragraphs, 41 questions, offsets found with str.find and
                       checked; about a third of the questions have 2-3 gold spans, as the real dev set has.
* math_demo.jsonl    - 240 {"problem", "solution"} lines (Chinese and English), exact via Decimal/Fraction; the last number in
                       each solution is the answer (some carry thousands separators; non-terminating divisions say "≈").
* demo_corpus_zh.txt - 6,000 unique lines from a small Chinese grammar, so a tiny LM's loss falls visibly; 12 of them (1 in
                       500) hold CJK characters outside the BMP or emoji for tokenizer round-trip tests.

All text is written for this project; data lines are long on purpose, hence the file-wide E501 exemption.
"""
# ruff: noqa: E501
import csv
import json
import random
import re
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from operator import add, mod, mul, sub, truediv
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "core" / "demo_data"  # package data: installed with llmlab
NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?")  # a number as an answer extractor sees it; the last one is the answer
OPS = {"+": add, "-": sub, "*": mul, "×": mul, "/": truediv, "÷": truediv, "%": mod}


def fmt(x, sep=False):
    """Exact decimal text without float noise or trailing zeros: Fraction(21, 2) -> '10.5', Decimal('10.00') -> '10'."""
    d = Decimal(x.numerator) / Decimal(x.denominator) if isinstance(x, Fraction) else Decimal(x)
    return "0" if d == 0 else format(d.normalize(), ",f" if sep else "f")


def near(rng, ans):
    """Three distinct wrong options close to an integer answer (never negative when the answer is not)."""
    pool = [p for p in dict.fromkeys([ans + d for d in (1, -1, 2, -2, 3, 5, -5, 10, -10, 11)] + [ans * 2]) if p != ans and p >= min(ans, 0)]
    return [str(p) for p in rng.sample(pool, 3)]


# ------------------------------------------------------------------------------------------------------ exams ---
# "question|right|wrong;wrong;wrong", several questions a line joined by " ## ".
GEO = """Which of these is an ocean?|Atlantic Ocean|Sahara Desert;Amazon River;Mount Everest ## Which of these is a continent?|Africa|Brazil;Nile;Everest
On which continent is Kenya?|Africa|Europe;South America;Australia ## What is the capital of France?|Paris|Lyon;Marseille;Nice
What is the capital of Japan?|Tokyo|Osaka;Kyoto;Seoul ## Which is the largest ocean on Earth?|Pacific Ocean|Atlantic Ocean;Indian Ocean;Arctic Ocean
In which country is Mount Fuji?|Japan|China;Nepal;Chile ## Which river flows through Cairo?|Nile|Amazon;Danube;Thames
What is the Sahara?|a desert|an ocean;a mountain range;a river ## Which of these countries is in South America?|Brazil|Spain;Kenya;India
What is the capital of Italy?|Rome|Milan;Venice;Madrid ## Canberra is the capital of which country?|Australia|Canada;New Zealand;Austria
Which ocean lies between Europe and North America?|Atlantic Ocean|Pacific Ocean;Indian Ocean;Southern Ocean ## What is the capital of the United Kingdom?|London|Manchester;Liverpool;Dublin
Which is the coldest continent?|Antarctica|Africa;Australia;South America ## What is the capital of Russia?|Moscow|Kyiv;Warsaw;Prague
Which of these cities is in China?|Beijing|Madrid;Lima;Oslo ## Which mountain is the highest above sea level?|Mount Everest|Mont Blanc;Mount Kilimanjaro;Mount Fuji"""
UNITS = """How many centimetres are in one metre?|100|10;1000;60 ## How many grams are in one kilogram?|1000|100;10;60
How many minutes are in one hour?|60|100;24;30 ## How many hours are in one day?|24|12;60;7
How many days are in one week?|7|5;10;12 ## How many millilitres are in one litre?|1000|100;10;500
How many metres are in one kilometre?|1000|100;10;10000 ## How many days are in a leap year?|366|365;360;364
At sea level, pure water freezes at what temperature?|0 °C|-10 °C;50 °C;100 °C ## At sea level, pure water boils at what temperature?|100 °C|0 °C;50 °C;80 °C
Which is the symbol for the kilogram?|kg|NA;km;ml ## Which of these is a unit of length?|metre|litre;kilogram;second
Which of these is a unit of mass?|kilogram|metre;litre;hour ## Which of these is a unit of time?|second|gram;metre;litre"""
ZH_VOCAB = """“大”的反义词是什么？|小|高;多;长 ## “快”的反义词是什么？|慢|急;早;远 ## “冷”的反义词是什么？|热|凉;冰;湿
“高兴”的反义词是什么？|难过|快乐;开心;兴奋 ## “早”的反义词是什么？|晚|快;先;新 ## “长”的反义词是什么？|短|远;宽;细
“黑”的反义词是什么？|白|暗;深;黄 ## “开”的反义词是什么？|关|打;放;拉 ## 下列哪一个是水果？|苹果|白菜;桌子;汽车
下列哪一个是动物？|熊猫|松树;书包;月亮 ## 下列哪一个是交通工具？|火车|毛巾;西瓜;铅笔 ## 下列哪一个是颜色？|绿色|跑步;米饭;椅子
下列哪一个是文具？|铅笔|面包;老虎;雨伞 ## 下列哪一个是蔬菜？|土豆|香蕉;老虎;毛巾 ## “一（　）书”的括号里应填哪个量词？|本|匹;辆;棵
“一（　）马”的括号里应填哪个量词？|匹|本;张;棵 ## “一（　）汽车”的括号里应填哪个量词？|辆|本;匹;朵 ## “一（　）树”的括号里应填哪个量词？|棵|本;辆;匹"""
ZH_LIFE = """一个星期有几天？|7天|5天;6天;10天 ## 一年有几个月？|12个月|10个月;11个月;13个月 ## 一天有多少个小时？|24个小时|12个小时;20个小时;60个小时
一小时有多少分钟？|60分钟|30分钟;100分钟;24分钟 ## 中秋节人们通常吃什么传统食物？|月饼|粽子;汤圆;饺子 ## 端午节人们通常吃什么传统食物？|粽子|月饼;汤圆;蛋糕
在中国，火警电话是多少？|119|110;120;114 ## 在中国，急救电话是多少？|120|110;119;114 ## 在中国，报警电话是多少？|110|119;120;114
下雨天出门，通常带什么挡雨？|雨伞|扇子;手套;书包 ## 刷牙时要用什么？|牙刷|梳子;筷子;铅笔 ## 冰箱主要用来做什么？|冷藏食物|洗衣服;看电视;煮米饭
寄信通常要去哪里？|邮局|医院;电影院;公园 ## 生病了应该去哪里看医生？|医院|邮局;电影院;菜市场 ## 太阳从哪个方向升起？|东方|西方;南方;北方
吃饭前应该先做什么？|洗手|睡觉;跑步;看电视 ## 过马路时行人应该走哪里？|人行横道|马路中央;护栏上;铁轨上 ## 看到红灯亮起时，行人应该怎么做？|停下等待|快速跑过;闭眼走过;边走边看手机"""
EN_SPECS = [("What is {a} {op} {b}?", "+-*/"[i % 4], (11, 99), (2, 40) if i % 4 < 2 else (2, 12)) for i in range(12)] + [
    ('Sam wrote "{a}, {b}" on the board. What is the sum of the two numbers?', "+", (10, 60), (10, 60)),
    ("A box holds {a} eggs. How many eggs are in {b} boxes?", "*", (6, 12), (3, 9)),
    ("Tom has {a} marbles and gives away {b}. How many marbles does he have left?", "-", (30, 80), (5, 25)),
    ("What is the remainder when {a} is divided by {b}?", "%", (20, 99), (3, 7)),
    ("A garden has {a} rows of {b} plants. How many plants are there in all?", "*", (3, 9), (3, 9))]
ZH_SPECS = [("计算 {a} {op} {b} 等于多少？", "+-×÷"[i % 4], (12, 99), (2, 50) if i % 4 < 2 else (2, 12)) for i in range(10)] + [
    ("小明有 {a} 个苹果，吃了 {b} 个，还剩几个？", "-", (20, 60), (3, 19)),
    ("每盒有 {a} 支铅笔，{b} 盒一共有多少支？", "*", (6, 12), (3, 9)),
    ("{a} 个橘子平均分给 {b} 个小朋友，每人分几个？", "/", (3, 9), (2, 8)),
    ("妈妈买菜花了 {a} 元，又买水果花了 {b} 元，一共花了多少元？", "+", (10, 60), (10, 60)),
    ("班里有男生 {a} 人，女生 {b} 人，全班一共有多少人？", "+", (15, 25), (15, 25)),
    ("一本书有 {a} 页，小红已经读了 {b} 页，还剩多少页没读？", "-", (80, 200), (20, 79)),
    ("一辆车每小时行驶 {a} 千米，{b} 小时行驶多少千米？", "*", (40, 90), (2, 5)),
    ("请计算下面的算式：\n{a} + {b} = ？", "+", (20, 70), (20, 70))]


def facts(block):
    return [(q, a, w.split(";")) for line in block.splitlines() for q, a, w in (item.split("|") for item in line.split(" ## "))]


def arith(rng, specs):
    """Word and bare arithmetic questions, answered by code (divisions are made exact)."""
    out = []
    for text, op, ra, rb in specs:
        a, b = rng.randint(*ra), rng.randint(*rb)
        a = a * b if op in "/÷" else a
        a, b = (b, a) if op == "-" and b > a else (a, b)
        ans = int(OPS[op](Fraction(a), b))
        out.append((text.format(a=a, b=b, op=op), str(ans), near(rng, ans)))
    return out


def prime_question(rng):
    prime = lambda n: all(n % k for k in range(2, int(n ** 0.5) + 1))
    p = rng.choice([n for n in range(20, 90) if prime(n)])
    odd = rng.sample([n for n in range(21, 90, 2) if not prime(n)], 2)
    return ("Which of these numbers is a prime number?", str(p), [str(n) for n in odd] + ["None"])


def conversions(rng):
    out = []
    for q, k in [("metres are in {x} km", 1000), ("grams are in {x} kg", 1000), ("minutes are in {x} hours", 60), ("millimetres are in {x} cm", 10)]:
        x = Decimal(rng.randint(11, 99)) / 10
        out.append((f"How many {q.format(x=x)}?", fmt(x * k), [fmt(x * k / 10), fmt(x * k * 10), fmt(x * k / 100)]))
    return out


def make_exams(rng):
    subjects = [("elementary_arithmetic", arith(rng, EN_SPECS) + [prime_question(rng)]), ("world_geography_basics", facts(GEO)),
                ("units_and_measures", facts(UNITS) + conversions(rng)), ("chinese_vocabulary", facts(ZH_VOCAB)),
                ("chinese_arithmetic", arith(rng, ZH_SPECS)), ("chinese_daily_life", facts(ZH_LIFE))]
    slots = [0, 1, 2, 3] * 27  # the right letter: every letter exactly 27 times, in a shuffled order
    rng.shuffle(slots)
    rows = []
    for subject, items in subjects:
        assert len(items) == 18, (subject, len(items))
        for q, right, wrong in items:
            opts = rng.sample(wrong, 3)
            opts.insert(slots[len(rows)], right)
            assert len(set(opts)) == 4, (q, opts)
            rows.append([str(len(rows)), q, *opts, "ABCD"[slots[len(rows)]], subject])
    with open(OUT / "exams_demo.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        w.writerow(["", "Question", "A", "B", "C", "D", "Answer", "Subject"])
        w.writerows(rows)
    return rows


# ------------------------------------------------------------------------------------------------------ squad ---
# Blocks split by blank lines: title, context, then "question || gold | gold ..." items joined by " ## ". All invented here.
SQUAD = """The Corner Oven
The Corner Oven is a small bakery on Mill Street run by Rosa Delgado and her brother Tomas. Rosa starts work at four o'clock every morning, when the street is still dark. Her most popular bread is a round rye loaf with caraway seeds, and it usually sells out before nine. Tomas looks after the shop counter and the accounts. On Fridays the bakery makes cinnamon buns for the primary school across the road, and the children collect them in two large baskets. The oven itself is more than forty years old, and Rosa says it bakes better than any new one.
Which street is The Corner Oven on? || Mill Street ## Who starts work at four o'clock every morning? || Rosa | Rosa Delgado ## What is the bakery's most popular bread? || a round rye loaf | round rye loaf | rye loaf
Who looks after the shop counter? || Tomas ## What does the bakery make for the school on Fridays? || cinnamon buns ## How old is the oven? || more than forty years old | more than forty years

Ashford Village Library
The library in Ashford village occupies the old railway station, which closed to trains in 1962. It opens on Tuesdays, Thursdays and Saturdays, and it is run entirely by volunteers. The head volunteer, a retired teacher named Margaret Hale, keeps a handwritten list of every book that comes in. The library now holds about three thousand books, most of them donated by local families. Its most borrowed section is gardening, followed closely by detective novels. Every December the volunteers hold a book sale in the former waiting room, and the money pays for new shelves and the heating bill.
Which building does the library occupy? || the old railway station | old railway station ## In what year did the station close to trains? || 1962 ## Who is the head volunteer? || Margaret Hale
How many books does the library hold? || about three thousand ## What is the library's most borrowed section? || gardening ## Where is the December book sale held? || the former waiting room | former waiting room

A Ride to the Coast
Last summer, Daniel and his cousin Priya cycled from Larkton to the coast, a distance of about ninety kilometres. They left at half past six in the morning to avoid the afternoon heat. Priya carried the tent, and Daniel carried the food, a camping stove and two spare inner tubes. Near the village of Brenmoor, Daniel's back tyre went flat, and they stopped for forty minutes to repair it under an oak tree. They reached the sea just before sunset and camped on a grassy field above the beach. The next day they took the train home with their bicycles.
Which town did the cousins start from? || Larkton ## What time did they leave? || half past six | at half past six ## Who carried the tent? || Priya
Near which village did the tyre go flat? || Brenmoor ## How long did they stop to repair the tyre? || forty minutes ## How did they get home? || the train

The Hillview School Garden
Behind Hillview Primary School there is a vegetable garden that the pupils planted three years ago. Each class looks after one raised bed, and the oldest pupils are responsible for the compost heap. This spring the garden grew potatoes, beans, lettuce and a row of tall sunflowers. A rain barrel next to the shed collects water from the roof, so the children rarely need to use the tap. Mr Okafor, the science teacher, uses the garden for lessons about insects and soil. In June the pupils sold their lettuce at the school fair and raised enough money to buy a wheelbarrow.
When did the pupils plant the garden? || three years ago ## Who is responsible for the compost heap? || the oldest pupils | oldest pupils ## What collects water from the roof? || A rain barrel
Who teaches science at the school? || Mr Okafor ## What did the pupils buy with the money from the fair? || a wheelbarrow | wheelbarrow

The Quayside Ferry
The small ferry at Quayside carries passengers across the River Wend between the old town and the new housing estate. The crossing takes about seven minutes, and the boat can hold twenty-four people and six bicycles. The ferry has been run by the Marsh family for three generations; today the captain is Helen Marsh, who took over from her father in 2015. In winter the first crossing is at seven o'clock, but in summer it starts an hour earlier. A single ticket costs one pound, and children under five travel free. When the river floods, the service stops and passengers must use the bridge two miles upstream.
Which river does the ferry cross? || the River Wend | River Wend ## How long does the crossing take? || about seven minutes ## Who is the captain today? || Helen Marsh
In what year did the captain take over from her father? || 2015 ## How much does a single ticket cost? || one pound ## What must passengers use when the river floods? || the bridge two miles upstream | the bridge

The Fenwick Community Choir
Every Wednesday evening, the Fenwick Community Choir rehearses in the hall of St Anne's church. The choir has forty-two members; the youngest is sixteen and the oldest is eighty-one. Their conductor, Samuel Reyes, works as a bus driver during the day and studied music in his spare time. The choir sings mostly folk songs, but each winter it learns one piece in a new language; last year it was a Welsh lullaby. Members pay a small fee each month, which covers the rent of the hall and the cost of sheet music. The choir's biggest concert takes place in the town square on the first Saturday of July.
On which evening does the choir rehearse? || Wednesday ## How many members does the choir have? || forty-two ## What is the conductor's job during the day? || bus driver | a bus driver
What kind of songs does the choir mostly sing? || folk songs ## What piece did the choir learn last year? || a Welsh lullaby ## Where does the choir's biggest concert take place? || in the town square | the town square

Bees at Dunmore
On a hillside farm outside Dunmore, Grace Whitfield keeps twelve beehives in a row along a stone wall. She started beekeeping after her grandmother gave her an old wooden hive as a birthday present. The bees feed mostly on clover and on the blossom of the apple orchard next door. Grace collects honey twice a year, in late June and again in September, and sells it in glass jars at the Saturday market. She wears a white suit and uses a smoker to keep the bees calm. Last year the hives produced about two hundred kilograms of honey.
How many beehives does Grace keep? || twelve ## Who gave Grace an old wooden hive? || her grandmother | grandmother ## What do the bees mostly feed on? || clover
Where does Grace sell her honey? || at the Saturday market ## What does she use to keep the bees calm? || a smoker | smoker ## How much honey did the hives produce last year? || about two hundred kilograms | two hundred kilograms"""


def make_squad():
    data, n = [], 0
    for block in SQUAD.split("\n\n"):
        title, context, *rest = block.splitlines()
        lines = [q for line in rest for q in line.split(" ## ")]
        assert 60 <= len(context.split()) <= 120 and 4 <= len(lines) <= 6, title
        qas = []
        for line in lines:
            question, golds = line.split(" || ")
            answers = [{"text": t, "answer_start": context.find(t)} for t in golds.split(" | ")]
            assert all(a["answer_start"] >= 0 and context[a["answer_start"]:][:len(a["text"])] == a["text"] for a in answers), line
            n += 1
            qas.append({"id": f"demo-{n:03d}", "question": question, "answers": answers})
        data.append({"title": title, "paragraphs": [{"context": context, "qas": qas}]})
    doc = {"version": "1.1", "data": data}
    (OUT / "squad_demo.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return doc


# ------------------------------------------------------------------------------------------------------- math ---
ZH_T = ["计算 {e} 等于多少？", "{e} = ?", "求 {e} 的值。", "请计算：{e}"]
EN_T = ["What is {e}?", "{e} = ?", "Compute {e}.", "Calculate {e}."]


def terminates(fr):
    return (fr * 10 ** 4).denominator == 1  # exact in at most four decimal places


def make_math(rng):
    items = []  # (problem, solution, answer as the solution's last number)

    def binop(a, op, b, zh, sep_in=False, sep_out=False):
        sym = rng.choice({"*": "*×", "/": "/÷"}.get(op, op)) if zh else op
        expr = lambda sep: f"{fmt(a, sep)} {sym} " + (f"({fmt(b, sep)})" if b < 0 else fmt(b, sep))
        r = OPS[op](Fraction(a), Fraction(b))
        if terminates(r):
            ans, sol = fmt(r, sep_out), f"{expr(sep_out)} = {fmt(r, sep_out)}"
        else:
            ans = str((Decimal(r.numerator) / Decimal(r.denominator)).quantize(Decimal("0.0001"), ROUND_HALF_UP))
            sol = ("保留四位小数，" if zh else "Rounded to four decimal places, ") + f"{expr(sep_out)} ≈ {ans}"
        items.append((rng.choice(ZH_T if zh else EN_T).format(e=expr(sep_in)), sol, ans))

    num = lambda hi, neg=0.25: rng.randint(1, hi) * (-1 if rng.random() < neg else 1)
    dec = lambda: Decimal(rng.choice([n for n in range(1, 300) if n % 10])) / 10 * (-1 if rng.random() < 0.3 else 1)
    for i in range(96):  # integers, a quarter of the operands negative
        op = "+-*/"[i % 4]
        a, b = num(999 if op in "+-" else 99), num(999 if op in "+-" else 30)
        binop(a * b if op == "/" else a, op, b, i % 2 == 0)
    for i in range(60):  # one-decimal operands; divisions only where the quotient is exact
        op, (a, b) = "+-*/"[i % 4], (dec(), dec())
        while op == "/" and not terminates(Fraction(a) / Fraction(b)):
            a, b = dec(), dec()
        binop(a, op, b, i % 2 == 1)
    for i in range(12):  # divisions that do not terminate: rounded, marked with ≈
        a, b = num(99, 0.2), rng.choice([3, 6, 7, 9, 11, 12])
        while terminates(Fraction(a, b)):
            a = num(99, 0.2)
        binop(a, "/", b, i % 2 == 0)
    for i in range(27):  # large numbers: thousands separators in every solution, in half the problems
        op = "+-*"[i % 3]
        binop(rng.randint(1000, 999999), op, rng.randint(2, 99) if op == "*" else rng.randint(1, 99999), i % 2 == 0, i % 4 < 2, True)
    items += [("12,345 + 1 = ?", "12,345 + 1 = 12,346", "12,346"), ("What is 15% of 80?", "15% of 80 = 12", "12")]
    for i in range(15):  # percentages
        p, n = rng.choice([5, 10, 12, 15, 20, 25, 30, 40, 50, 75]), rng.randint(2, 80) * 5
        r = fmt(Decimal(p) * n / 100)
        items.append((f"What is {p}% of {n}?", f"{p}% of {n} = {r}", r) if i % 2 else (f"{n} 的 {p}% 是多少？", f"{n} × {p}% = {r}", r))
    fracs = [(Fraction(3, 4), "+", Fraction(1, 4))]
    while len(fracs) < 16:  # fractions whose result is an exact decimal; the solution gives both forms
        a, op, b = Fraction(rng.randint(1, 9), rng.choice([2, 3, 4, 5, 6, 8, 10])), rng.choice("+-*"), Fraction(rng.randint(1, 9), rng.choice([2, 3, 4, 5, 6, 8, 10]))
        if a.denominator > 1 and b.denominator > 1 and terminates(OPS[op](a, b)):
            fracs.append((a, op, b))
    for i, (a, op, b) in enumerate(fracs):
        r, e = OPS[op](a, b), f"{a} {op} {b}"
        sol = f"{e} = {fmt(r)}" if r.denominator == 1 else f"{e} = {r} = {fmt(r)}"
        items.append((f"计算 {e} 等于多少？" if i % 2 else f"What is {e}?", sol, fmt(r)))
    for i in range(12):  # square roots of exact squares (算术平方根: the non-negative root)
        root = Decimal(rng.randint(2, 30)) if i < 8 else Decimal(rng.randint(11, 25)) / 10
        sq, r = fmt(root * root), fmt(root)
        items.append((f"求 {sq} 的算术平方根。", f"{sq} 的算术平方根是 {r}", r) if i % 2 else (f"What is the square root of {sq}?", f"√{sq} = {r}", r))
    rng.shuffle(items)
    assert len(items) == 240, len(items)
    with open(OUT / "math_demo.jsonl", "w", encoding="utf-8") as f:
        for problem, solution, ans in items:
            assert NUM.findall(solution)[-1] == ans, (solution, ans)
            f.write(json.dumps({"problem": problem, "solution": solution}, ensure_ascii=False) + "\n")
    return items


# ----------------------------------------------------------------------------------------------------- corpus ---
PLACES = {"学校": "上课 看书 写作业", "河边": "钓鱼 散步 洗衣服", "集市": "买菜 卖鸡蛋 买水果", "图书馆": "看书 借书 写作业", "小卖部": "买酱油 买铅笔",
          "车站": "等车 接人", "镇上": "买东西 看病 理发", "公园": "散步 放风筝 跑步", "村口": "等车 晒太阳 下象棋", "田里": "种菜 干活 拔草",
          "山上": "砍柴 采蘑菇 摘野果", "果园里": "摘苹果 摘桃子", "操场上": "踢足球 跑步 跳绳", "奶奶家": "吃饭 包饺子"}
W = {k: v.split() for k, v in dict(
    who="小明 小红 小华 小芳 王奶奶 李爷爷 张老师 刘叔叔 陈阿姨 赵大伯 村长 妈妈 爸爸 哥哥 姐姐 弟弟 妹妹 老周 阿强 林医生",
    many="村民们 孩子们 同学们 老人们 大家 邻居们", adj="高兴 开心 满意 激动", cn="两 三 四 五 六 七 八 九 十",
    when="早上 中午 下午 晚上 今天 昨天 明天 星期六 星期天 周末 放学以后 吃完饭以后", daypart="早上 中午 下午 晚上 放学以后",
    good="今天天气很好 天空又高又蓝 太阳暖洋洋的 春风吹在脸上", glad="心里很高兴 笑得很开心 想出去走走 哼起了歌",
    bad="早上下了一场小雨 外面刮着大风 昨晚下了一场大雪 天阴沉沉的", gloom="不想出门 穿上了厚衣服 带上了雨伞 在家里看书",
    why="今年的收成很好 明天就要过年了 新桥终于修好了 学校放假了 村里通了公交车 地里的西瓜熟了 下了一场及时雨 村里新建了图书馆",
    food="米饭 面条 饺子 包子 西瓜 苹果 鸡蛋汤 豆腐 青菜 红烧鱼 玉米 馒头 橘子 小米粥",
    event="开了一个大会 来了一位新老师 修好了那座旧桥 种下了一百棵树 举行了运动会 放了一场电影 办了一场婚礼",
    rel="哥哥 姐姐 爸爸 妈妈 叔叔 舅舅 表姐", job="镇上的医院 县城的工厂 村里的小学 镇上的邮局 城里的饭馆 县里的书店",
    acts="唱歌 聊天 看书 听音乐 做饭 画画 下棋", yard="院子里 树下 门口 屋檐下",
    say="你吃饭了吗？ 明天我们去河边钓鱼吧！ 这本书真好看。 快点，要迟到了！ 今天的饭菜真香啊！ 我们一起去学校吧。 外面下雨了，别忘了带伞。 谢谢你帮我。 你家的小狗真可爱！ 作业写完了吗？").items()}
QA = [("你去哪儿？", "我去镇上买东西。"), ("现在几点了？", "已经八点了。"), ("今天冷不冷？", "有点冷，多穿一点吧。"), ("你喜欢吃什么？", "我最喜欢吃饺子。"),
      ("这个西瓜多少钱？", "五块钱一个。"), ("你明天有空吗？", "有空，我们一起去公园吧。"), ("你家住在哪里？", "我家住在村口的大树旁边。"), ("老师来了吗？", "还没有，再等一会儿吧。")]
SEASON = {"春天": "河边的柳树绿了 山坡上的桃花开了", "夏天": "池塘里的荷花开了 知了在树上叫个不停", "秋天": "田里的稻子黄了 果园里的苹果红了", "冬天": "山上盖满了白雪 河面上结了一层冰"}
GOODS = [("斤", "苹果"), ("斤", "白菜"), ("本", "书"), ("支", "铅笔"), ("个", "西瓜"), ("瓶", "牛奶"), ("条", "鱼"), ("斤", "鸡蛋")]
TEMPLATES = """{when}，{p}去{to}{do}。|{p}和{q}在{to}{do}。|{good}，{p}{glad}。|{bad}，{p}{gloom}。|{many}都很{adj}，因为{why}。|{p}说：“{say}”|“{say}”{p}对{q}说。
{p}买了{n}{unit}{goods}，每{unit}{price}元，一共花了{total}元。|{m}月{d}日，村里{event}。|{p}每天{daypart}都去{to}{do}。|{p}的{rel}在{job}工作。
虽然{bad}，但是{p}还是去{to}{do}了。|{p}喜欢吃{f1}，不喜欢吃{f2}。|{season}到了，{scene}。|{p}问：“{ask}”{q}回答：“{reply}”|这个月，{p}读完了{cn}本书。
学校里有{k}个班，每个班有{s}个学生，一共有{ks}个学生。|{p}一边{act}，一边{act2}。|{y}年{m}月{d}日，{p}和{q}在{yard}{act}。""".replace("\n", "|").split("|")
RARE = [chr(c) for c in (0x20000, 0x20BB7, 0x2123D, 0x24B62, 0x2A6A5, 0x20001)]  # CJK Extension B, outside the BMP
SPECIAL = [f"王{RARE[0]}今天去镇上买了两斤苹果。", "今天天气很好☀️，我们去公园放风筝吧！", f"{RARE[1]}田先生在村口开了一家小饭馆。",
           "小红吃了一个又大又红的苹果🍎，笑得很开心。", f"李{RARE[2]}说：“明天我们一起去河边钓鱼吧！”", "妈妈说：“今天的饺子真好吃😊。”",
           f"陈{RARE[3]}的哥哥在县城的工厂工作。", "春节那天，我们一家人👨‍👩‍👧一起吃了年夜饭。", f"张{RARE[4]}每天早上都去学校看书。",
           "村里放了一场电影🎬，孩子们都很高兴。", f"赵{RARE[5]}和小明在操场上踢足球⚽。", "下雨了🌧️，别忘了带伞。"]


def sentence(rng):
    pick = {k: rng.choice(v) for k, v in W.items()}
    p, q = rng.sample(W["who"], 2)
    to = rng.choice(list(PLACES))
    f1, f2 = rng.sample(W["food"], 2)
    act, act2 = rng.sample(W["acts"], 2)
    season, (unit, goods), (ask, reply) = rng.choice(list(SEASON)), rng.choice(GOODS), rng.choice(QA)
    n, price, k, s = rng.randint(2, 9), rng.randint(2, 8), rng.randint(3, 9), rng.randint(20, 45)
    return rng.choice(TEMPLATES).format(**pick, p=p, q=q, to=to, do=rng.choice(PLACES[to].split()), f1=f1, f2=f2, act=act, act2=act2,
                                        season=season, scene=rng.choice(SEASON[season].split()), unit=unit, goods=goods, ask=ask,
                                        reply=reply, n=n, price=price, total=n * price, k=k, s=s, ks=k * s, y=rng.randint(2015, 2024),
                                        m=rng.randint(1, 12), d=rng.randint(1, 28))


def make_corpus(rng):
    seen, lines, special = set(), [], iter(SPECIAL)
    for i in range(6000):
        if i % 500 == 137:  # 12 tokenizer round-trip cases, evenly spread
            lines.append(next(special))
            continue
        s = sentence(rng)
        while s in seen or not 8 <= len(s) <= 40 or re.search(r"([，。！？“”：])\1", s):
            s = sentence(rng)
        seen.add(s)
        lines.append(s)
    (OUT / "demo_corpus_zh.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


if __name__ == "__main__":
    rows, doc = make_exams(random.Random(1001)), make_squad()
    items, lines = make_math(random.Random(1002)), make_corpus(random.Random(1003))
    print(f"exams_demo.csv: {len(rows)} rows | squad_demo.json: {sum(len(d['paragraphs'][0]['qas']) for d in doc['data'])} questions in "
          f"{len(doc['data'])} paragraphs | math_demo.jsonl: {len(items)} lines | demo_corpus_zh.txt: {len(lines)} lines")
