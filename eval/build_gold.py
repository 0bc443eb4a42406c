#!/usr/bin/env python3
"""Builds eval/gold.jsonl. Gold offsets are computed with str.find on exact
sentence text (never by hand). Run from anywhere: python3 eval/build_gold.py"""
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = "seeds/macron-to-press-trump-on-putin.txt"
B = "seeds/trump-macron-split-on-trusting-putin.txt"
TEXT = {f: open(os.path.join(ROOT, f), encoding="utf-8", newline="").read() for f in (A, B)}


def span(f, sentence):
    t = TEXT[f]
    i = t.find(sentence)
    assert i >= 0, (f, sentence)
    assert t.find(sentence, i + 1) == -1, ("not unique", f, sentence)
    return {"file": f, "start": i, "end": i + len(sentence)}


# --- sentences of article A (macron-to-press-trump-on-putin) ---
A_WASHINGTON = "French President Emmanuel Macron is preparing to meet former U.S. President Donald Trump in Washington, where he will stress the importance of maintaining a firm and coordinated approach toward Russian President Vladimir Putin."
A_THIRD_YEAR = "As the war in Ukraine nears its third year, Macron believes it is in the shared interest of both the U.S. and Europe to prevent Russia from further aggression."
A_CREDIBILITY = "He sees any display of weakness as a direct threat to global stability and plans to caution Trump that backing down against Putin would undermine not only Western security but also Trump’s international credibility."
A_CHINA = "He will argue that if the U.S. appears weak in confronting Putin, it could set a precedent that emboldens China in its own territorial ambitions."
A_ECHO = "Trump’s recent statements on Ukraine have raised concerns among European allies, as they have echoed some of Putin’s narratives and suggested a willingness to engage in direct talks with Moscow."
A_WEAKEN = "Many European leaders and Ukrainian officials fear that Trump’s approach could weaken the collective Western response, making it harder to hold Russia accountable for its actions."
A_TOOL = "He believes that Putin does not know how far Trump is willing to go, which could serve as a strategic tool in negotiations."
A_LEVERAGE = "By keeping the Russian leader uncertain, Western allies might gain leverage in diplomatic discussions."
A_INVOLVE1 = "However, Macron remains firm that any negotiated settlement must be conducted with European and Ukrainian involvement to ensure a fair and lasting resolution."
A_GLOBAL = "For Macron, the outcome of the war in Ukraine is not just a European issue but a global one."
A_REGIMES = "A Russian victory would not only embolden Putin but could set a dangerous precedent for other authoritarian regimes looking to expand their influence."
A_EXPANSION = "Any future peace deal, according to Macron, must be carefully structured to avoid giving Russia an opportunity for further territorial expansion."
A_CEASEFIRE = "A ceasefire alone would not be enough if it comes at the expense of Ukrainian sovereignty."
A_INVOLVE2 = "Instead, Macron argues that Ukraine and its European partners must be directly involved in the negotiations to ensure a fair agreement that does not legitimize Russian aggression."
A_SPENDING = "Macron is also prepared to discuss European defense spending, aligning with Trump’s long-standing demand that NATO allies contribute more to their own security."
A_RESPONSIBILITY = "He acknowledges the need for Europe to take greater responsibility for its defense, particularly in light of the ongoing war in Ukraine."
A_DEPENDENCE = "He believes that increased military investment will strengthen Europe’s position in global security discussions and reduce dependence on the U.S. for defense support."
A_TROOPS = "While Macron has ruled out sending French combat troops to Ukraine, he is open to deploying a security force to help guarantee stability once a peace deal is reached."
A_FORCE = "Such a force, operating within a coordinated framework with allies, would ensure that Russia does not violate the terms of any negotiated settlement."
A_PERSUADE = "The French leader is determined to persuade Trump that standing firm against Putin is essential for both U.S. and European security."
A_BALANCE = "Macron’s push for a strong and coordinated stance against Russia reflects the broader concerns of European nations that fear any wavering in U.S. support could shift the balance of power in Moscow’s favor."
A_WASHINGTON2 = "The meeting in Washington may not only shape the future of U.S.-Europe cooperation but also influence the course of the war in Ukraine."

# --- sentences of article B (trump-macron-split-on-trusting-putin) ---
B_CLASH = "In a high-stakes meeting marked by both unity and discord, U.S. President Donald Trump and French President Emmanuel Macron clashed over whether Russian leader Vladimir Putin can be trusted to broker peace in Ukraine."
B_AGREED = "The leaders presented diverging views on dealing with the Kremlin but agreed on one critical point: the urgent need to end Europe’s bloodiest conflict since World War II."
B_22MONTH = "Macron stressed that Russia “cannot be a credible guarantor of peace” after its 22-month invasion of Ukraine."
B_AT_HIS_WORD = "The former U.S. president once claimed he took the Russian leader “at his word” regarding election interference denials."
B_PEACE = "“Peace is possible, and it’s necessary,” Macron said."
B_DAY_ONE = "Trump added, “This war ends on day one if I’m back in the Oval Office.”"
B_SANCTIONS = "Macron has backed heavy sanctions and military aid for Kyiv."
B_WITHHOLD = "Trump, however, suggested withholding U.S. support unless Europe increases financial contributions."
B_DO_MORE = "“Europe must do more,” he acknowledged."
B_ABANDON = "“But abandoning allies mid-fight risks empowering aggression.”"
B_POLAND = "Macron’s skepticism aligns with Eastern European nations like Poland."
B_ORBAN = "Trump’s transactional rhetoric resonates with Hungary’s Viktor Orbán, who opposes EU sanctions."
B_BACKCHANNEL = "Sources say both leaders explored backchannel talks involving Turkey and Saudi Arabia."
B_GRAIN = "These efforts aim to revive grain export deals and prisoner swaps."
B_INTEGRITY = "Macron cautioned that any agreement must include Ukraine’s full territorial integrity—a demand Moscow rejects."
B_RAPPORT = "Trump offered fewer specifics but reiterated his belief that personal rapport with Putin could break the deadlock."
B_LIKE_HIM = "“I know him, I like him,” he said."
B_UN = "U.N. reports estimate over 10,000 civilian deaths and 14 million displaced Ukrainians."
B_FIGURES = "Macron cited these figures to argue for sustained pressure on Russia."
B_ENERGY = "Trump emphasized the conflict’s global economic fallout, including energy price spikes."
B_ALLY = "Macron praised Trump’s “pragmatism,” while the former president called France “a great ally.”"
B_BODY = "Their body language hinted at unresolved tensions."
B_STALLED = "With Ukraine’s counteroffensive stalling and U.S. aid stalled in Congress, observers warn Western unity may fray without concrete actions."

Q = []


def ans(question, facts, spans, history=(), note=None):
    Q.append(dict(question=question, answerable=True, facts=facts,
                  gold=[span(f, s) for f, s in spans], history=list(history), note=note))


def unans(question, history=(), note=None):
    Q.append(dict(question=question, answerable=False, facts=[], gold=[],
                  history=list(history), note=note))


# ---------------- answerable, standalone ----------------
ans("Where is Macron going to sit down with Trump?",
    [["Washington"]], [(A, A_WASHINGTON), (A, A_WASHINGTON2)])
ans("How long has the war in Ukraine been going on?",
    [["third year", "22-month", "22 month"]], [(A, A_THIRD_YEAR), (B, B_22MONTH)],
    note="articles disagree: A says nearing its third year, B says 22-month invasion; either is acceptable")
ans("Why does Macron think being soft on Putin would hurt Trump himself?",
    [["credibility"]], [(A, A_CREDIBILITY)])
ans("What's the China angle in Macron's argument?",
    [["China"], ["precedent", "embolden"]], [(A, A_CHINA)], note="China precedent")
ans("Why are European allies uneasy about what Trump has been saying on Ukraine lately?",
    [["narratives"], ["direct talks"]], [(A, A_ECHO)])
ans("What are European leaders and Ukrainian officials afraid Trump's approach might do?",
    [["weaken"]], [(A, A_WEAKEN)])
ans("How could Trump's unpredictability actually help the West, in Macron's view?",
    [["strategic tool", "leverage"]], [(A, A_TOOL), (A, A_LEVERAGE)],
    note="unpredictability as leverage; either sentence suffices")
ans("Who does Macron say has to be at the table for any settlement?",
    [["Europe"], ["Ukrain"]], [(A, A_INVOLVE1), (A, A_INVOLVE2)])
ans("Does Macron see the Ukraine war as purely a European matter?",
    [["global"]], [(A, A_GLOBAL)])
ans("What does Macron think a Russian win would signal to other authoritarian governments?",
    [["dangerous precedent", "precedent"]], [(A, A_REGIMES)])
ans("Would a simple ceasefire be good enough for Macron?",
    [["not be enough"], ["sovereignty"]], [(A, A_CEASEFIRE)])
ans("Which long-standing Trump demand does Macron's openness on defense spending line up with?",
    [["contribute more"]], [(A, A_SPENDING)], note="defense spending")
ans("What does Macron expect Europe to gain from investing more in the military?",
    [["reduce dependence", "dependence on the U.S."]], [(A, A_DEPENDENCE)])
ans("Is France going to send combat troops to Ukraine?",
    [["ruled out"]], [(A, A_TROOPS)], note="no combat troops")
ans("What is Macron hoping to persuade Trump of?",
    [["standing firm"]], [(A, A_PERSUADE)])
ans("What do European nations fear could happen if U.S. support wavers?",
    [["balance of power"], ["Moscow"]], [(A, A_BALANCE)])
ans("What did the two leaders clash over?",
    [["trusted"]], [(B, B_CLASH)])
ans("What was the one critical thing Trump and Macron agreed on?",
    [["need to end", "bloodiest conflict"]], [(B, B_AGREED)])
ans("Does Macron consider Russia a reliable guarantor of peace?",
    [["cannot be a credible guarantor"]], [(B, B_22MONTH)])
ans("What did Trump once say about Putin's denials of election meddling?",
    [["at his word"]], [(B, B_AT_HIS_WORD)])
ans("What exactly did Macron say about the prospects for peace?",
    [["Peace is possible"]], [(B, B_PEACE)], note="quote")
ans("How fast did Trump claim he would end the war if he returned to the Oval Office?",
    [["day one"]], [(B, B_DAY_ONE)], note="quote")
ans("What kind of support has Macron backed for Kyiv?",
    [["sanctions"], ["military aid"]], [(B, B_SANCTIONS)], note="sanctions/military aid")
ans("Under what condition would Trump keep U.S. support flowing?",
    [["financial contributions"]], [(B, B_WITHHOLD)])
ans("Which country's stance is Macron's skepticism compared to?",
    [["Poland"]], [(B, B_POLAND)])
ans("Where does the Hungarian leader stand on EU sanctions?",
    [["opposes"]], [(B, B_ORBAN)], note="Hungary/Orbán")
ans("Which countries were part of the backchannel talks?",
    [["Turkey"], ["Saudi Arabia"]], [(B, B_BACKCHANNEL)])
ans("What demand did Macron make that Moscow refuses to accept?",
    [["territorial integrity"]], [(B, B_INTEGRITY)])
ans("What does Trump believe could break the deadlock?",
    [["personal rapport", "rapport"]], [(B, B_RAPPORT)])
ans("In his own words, how did Trump describe his feelings about Putin?",
    [["I know him, I like him", "I like him"]], [(B, B_LIKE_HIM)], note="quote")
ans("How many civilians have been killed in the war?",
    [["10,000", "10000"]], [(B, B_UN)])
ans("Why did Macron bring up the casualty and displacement numbers?",
    [["sustained pressure"]], [(B, B_FIGURES)])
ans("What economic consequences of the war did Trump focus on?",
    [["energy price"]], [(B, B_ENERGY)])
ans("How did Trump describe France?",
    [["great ally"]], [(B, B_ALLY)])
ans("What did the leaders' body language suggest?",
    [["unresolved tensions"]], [(B, B_BODY)])
ans("How is Ukraine's counteroffensive going?",
    [["stalling"]], [(B, B_STALLED)])
ans("What's the status of U.S. aid for Ukraine in Congress?",
    [["stalled"]], [(B, B_STALLED)])

# ---------------- answerable, spanning both articles ----------------
ans("Does Macron accept that Europe has to carry more of the burden itself?",
    [["Europe must do more", "greater responsibility"]],
    [(A, A_RESPONSIBILITY), (B, B_DO_MORE)], note="both articles; either sentence suffices")
ans("What territorial conditions does Macron set for any peace agreement?",
    [["territorial expansion"], ["territorial integrity"]],
    [(A, A_EXPANSION), (B, B_INTEGRITY)], note="both articles; facts from both")
ans("Where were Macron and Trump meeting, and what did they clash over?",
    [["Washington"], ["trusted"]],
    [(A, A_WASHINGTON), (B, B_CLASH)], note="both articles; facts from both")
ans("What is Macron willing to discuss on defense spending, and what did Trump want from Europe before keeping U.S. support?",
    [["defense spending"], ["financial contributions"]],
    [(A, A_SPENDING), (B, B_WITHHOLD)], note="both articles; facts from both")

# ---------------- follow-ups ----------------
H_TROOPS = "Is France going to send combat troops to Ukraine?"
ans("So what would he be willing to deploy instead, and when?",
    [["security force"], ["peace deal"]], [(A, A_TROOPS)], history=[H_TROOPS])
H_DEPLOY = "So what would he be willing to deploy instead, and when?"
ans("And what would that force be meant to ensure?",
    [["not violate"]], [(A, A_FORCE)], history=[H_TROOPS, H_DEPLOY])
H_CIV = "How many civilians have been killed in the war?"
ans("And how many people have been displaced?",
    [["14 million"]], [(B, B_UN)], history=[H_CIV])
ans("Where do those numbers come from?",
    [["U.N.", "United Nations"]], [(B, B_UN)], history=[H_CIV, "And how many people have been displaced?"])
H_POLAND = "Which country's stance is Macron's skepticism compared to?"
ans("And who does Trump's rhetoric resonate with?",
    [["Orbán", "Orban"]], [(B, B_ORBAN)], history=[H_POLAND])
H_BACK = "Which countries were part of the backchannel talks?"
ans("What are those talks trying to achieve?",
    [["grain"], ["prisoner"]], [(B, B_GRAIN)], history=[H_BACK], note="grain deals")
H_BURDEN = "Does Macron accept that Europe has to carry more of the burden itself?"
ans("Did he add any warning to that?",
    [["abandoning allies"]], [(B, B_ABANDON)], history=[H_BURDEN])
H_FRANCE = "How did Trump describe France?"
ans("And what did Macron praise Trump for?",
    [["pragmatism"]], [(B, B_ALLY)], history=[H_FRANCE])

# ---------------- unanswerable ----------------
unans("What's the weather going to be like in Paris this weekend?", note="off-topic")
unans("Can you give me a good recipe for ratatouille?", note="off-topic")
unans("Who won the last FIFA World Cup?", note="off-topic")
unans("What did the German chancellor say about the Macron-Trump meeting?", note="near-topic: Germany not mentioned")
unans("On what date did Macron and Trump meet?", note="near-topic: no date given")
unans("How many Ukrainian soldiers have died in the war so far?", note="near-topic: only civilian deaths given")
unans("What did Trump say about China and Taiwan?", note="near-topic: China raised only in Macron's argument; Taiwan absent")
unans("What percentage of GDP are NATO members expected to spend on defense?", note="near-topic: no NATO budget figures")
unans("How many billions of dollars in military aid has the U.S. sent Ukraine?", note="near-topic: no aid amounts")
unans("What did Zelensky say about the talks between Macron and Trump?", note="near-topic: Zelensky not mentioned")
unans("By how much have energy prices gone up in Europe?", note="near-topic: energy price spikes mentioned, no figures")
unans("Has Putin agreed to sit down with Macron for talks?", note="near-topic: no Putin-Macron meeting reported")
unans("When are they supposed to take place?", history=[H_BACK], note="follow-up; no timing given")
unans("How many of those were children?", history=[H_CIV], note="follow-up; no breakdown given")

with open(os.path.join(ROOT, "eval", "gold.jsonl"), "w", encoding="utf-8") as out:
    for n, q in enumerate(Q, 1):
        rec = {"id": f"q{n:02d}", **q}
        if rec["note"] is None:
            del rec["note"]
        out.write(json.dumps(rec, ensure_ascii=False) + "\n")
print(f"wrote {len(Q)} questions")
