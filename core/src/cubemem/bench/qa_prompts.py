"""Prompts of the answer-level benchmarks: the answerer's (ours), and the judges'.

The judges are the ones peers publish, word for word, so a score here sits beside theirs:

- LoCoMo: the LLM-judge prompt of Mem0's evaluation (``ACCURACY_PROMPT`` in
  https://github.com/mem0ai/mem0/blob/main/evaluation/metrics/llm_judge.py, Apache-2.0),
  used by the Mem0 paper (arXiv 2504.19413), Zep, MemOS and others for their "J" score:
  CORRECT / WRONG, generous on wording and on date formats.
- LongMemEval: ``get_anscheck_prompt`` of the benchmark's own evaluation
  (https://github.com/xiaowu0162/LongMemEval, ``src/evaluation/evaluate_qa.py``, MIT): one
  template per question type, and one for abstention questions; "yes" in the reply counts.
- HaluMem publishes its labels (its paper and ``eval/evaluation.py``), not a prompt we can
  cite here; the prompts below ask for exactly those labels: extraction coverage 0/1/2,
  extracted-memory accuracy 0/1/2, update Correct/Hallucination/Omission/Other, answer
  Correct/Hallucination/Omission.
"""

from __future__ import annotations

ANSWER_SYSTEM = (
    "You answer a question about past conversations using only the memories given. Each "
    "memory starts with its date. Answer in one short sentence or phrase. Resolve relative "
    "dates ('last week') against the memory's date. If the memories do not contain the "
    "answer, say that you do not know."
)
ANSWER_USER = "Memories:\n{context}\n\nToday is {today}.\nQuestion: {question}\nAnswer:"

LOCOMO_JUDGE = """
Your task is to label an answer to a question as ’CORRECT’ or ’WRONG’. You will be given the following data:
    (1) a question (posed by one user to another user), 
    (2) a ’gold’ (ground truth) answer, 
    (3) a generated answer
which you will score as CORRECT/WRONG.

The point of the question is to ask about something one user should know about the other user based on their prior conversations.
The gold answer will usually be a concise and short answer that includes the referenced topic, for example:
Question: Do you remember what I got the last time I went to Hawaii?
Gold answer: A shell necklace
The generated answer might be much longer, but you should be generous with your grading - as long as it touches on the same topic as the gold answer, it should be counted as CORRECT. 

For time related questions, the gold answer will be a specific date, month, year, etc. The generated answer might be much longer or use relative time references (like "last Tuesday" or "next month"), but you should be generous with your grading - as long as it refers to the same date or time period as the gold answer, it should be counted as CORRECT. Even if the format differs (e.g., "May 7th" vs "7 May"), consider it CORRECT if it's the same date.

Now it's time for the real question:
Question: {question}
Gold answer: {gold_answer}
Generated answer: {generated_answer}

First, provide a short (one sentence) explanation of your reasoning, then finish with CORRECT or WRONG. 
Do NOT include both CORRECT and WRONG in your response, or it will break the evaluation script.

Just return the label CORRECT or WRONG in a json format with the key as "label".
"""  # noqa: E501 - the published text, byte for byte

_LME_HEAD = "I will give you a question, a correct answer, and a response from a model. Please answer yes if the response contains the correct answer. Otherwise, answer no. "  # noqa: E501
_LME_STEPS = "If the response is equivalent to the correct answer or contains all the intermediate steps to get the correct answer, you should also answer yes. If the response only contains a subset of the information required by the answer, answer no. "  # noqa: E501
_LME_TAIL = "\n\nQuestion: {}\n\nCorrect Answer: {}\n\nModel Response: {}\n\nIs the model response correct? Answer yes or no only."  # noqa: E501
LONGMEMEVAL_JUDGE = {
    "single-session-user": _LME_HEAD + _LME_STEPS + _LME_TAIL,
    "single-session-assistant": _LME_HEAD + _LME_STEPS + _LME_TAIL,
    "multi-session": _LME_HEAD + _LME_STEPS + _LME_TAIL,
    "temporal-reasoning": _LME_HEAD
    + _LME_STEPS
    + "In addition, do not penalize off-by-one errors for the number of days. If the question asks for the number of days/weeks/months, etc., and the model makes off-by-one errors (e.g., predicting 19 days when the answer is 18), the model's response is still correct. "  # noqa: E501
    + _LME_TAIL,
    "knowledge-update": _LME_HEAD
    + "If the response contains some previous information along with an updated answer, the response should be considered as correct as long as the updated answer is the required answer."  # noqa: E501
    + _LME_TAIL,
    "single-session-preference": "I will give you a question, a rubric for desired personalized response, and a response from a model. Please answer yes if the response satisfies the desired response. Otherwise, answer no. The model does not need to reflect all the points in the rubric. The response is correct as long as it recalls and utilizes the user's personal information correctly.\n\nQuestion: {}\n\nRubric: {}\n\nModel Response: {}\n\nIs the model response correct? Answer yes or no only.",  # noqa: E501
}
LONGMEMEVAL_ABSTENTION = "I will give you an unanswerable question, an explanation, and a response from a model. Please answer yes if the model correctly identifies the question as unanswerable. The model could say that the information is incomplete, or some other information is given but the asked information is not.\n\nQuestion: {}\n\nExplanation: {}\n\nModel Response: {}\n\nDoes the model correctly identify the question as unanswerable? Answer yes or no only."  # noqa: E501

HALUMEM_QA = (
    "Judge an AI's answer about a user against the reference answer and the evidence.\n"
    "Question: {question}\nReference answer: {gold}\nEvidence:\n{evidence}\n"
    "AI answer: {answer}\n\n"
    'Reply with JSON {{"result": "Correct"}} if the answer agrees with the reference, '
    '{{"result": "Hallucination"}} if it states something wrong or unsupported, or '
    '{{"result": "Omission"}} if it declines or leaves out what was asked.'
)
HALUMEM_INTEGRITY = (
    "Memories a system stored:\n{memories}\n\nExpected memory: {point}\n\n"
    'Reply with JSON {{"score": 2}} if the stored memories contain the expected memory in '
    'full, {{"score": 1}} if in part, {{"score": 0}} if not at all.'
)
HALUMEM_ACCURACY = (
    "Dialogue:\n{dialogue}\n\nReference memories:\n{golden}\n\nA memory a system stored: "
    "{memory}\n\n"
    'Reply with JSON {{"accuracy_score": 2}} if the dialogue supports it fully, 1 if in part, '
    '0 if it is false or unsupported, and "is_included_in_golden_memories": "true" or "false".'
)
HALUMEM_UPDATE = (
    "A user's memory changed.\nBefore:\n{original}\nAfter: {updated}\n\n"
    "What a memory system returns for it:\n{found}\n\n"
    'Reply with JSON {{"evaluation_result": X}}, X one of "Correct" (it holds the updated '
    'memory), "Hallucination" (it holds something wrong), "Omission" (it holds only the old '
    'memory, or nothing), "Other".'
)
