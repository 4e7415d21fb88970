"""Word lists the built-in generator routes and checks by. Plain data: extend here, not in the logic."""

from __future__ import annotations

import re


def wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _any(*phrases: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(phrases) + r")\b", re.I)


# Symptoms a clinician asks about; an answered question about one becomes "Denies X" / "Reports X".
SYMPTOMS = (
    "fevers?", "chills", "night sweats", "weight (?:gain|loss)", "fatigue", "tired(?:ness)?", "nausea", "vomiting",
    "diarrhea", "constipation", "abdominal pain", "belly pain", "stomach pain", "heartburn", "reflux",
    "blood in (?:your|the) stool", "chest pain", "chest tightness", "palpitations", "shortness of breath",
    "short of breath", "trouble breathing", "wheezing", "coughs?", "coughing", "sore throat", "runny nose",
    "congestion", "headaches?", "dizziness", "dizzy", "lightheaded(?:ness)?", "light-headed(?:ness)?",
    "blurry vision", "vision changes", "numbness", "tingling", "weakness", "swelling", "swollen", "rash(?:es)?",
    "itching", "bruising", "bleeding", "pain with urination", "burning with urination", "urinary frequency",
    "blood in (?:your|the) urine", "joint pain", "back pain", "neck pain", "muscle aches", "body aches",
    "anxiety", "depression", "trouble sleeping", "insomnia", "loss of appetite", "appetite", "falls?",
    "loss of consciousness", "passing out", "fainting", "leg swelling", "ankle swelling", "seizures?",
    "memory problems", "confusion", "bloating", "cramping", "stiffness", "redness", "discharge",
)
SYMPTOM = re.compile(r"\b(?:" + "|".join(SYMPTOMS) + r")\b", re.I)

# Drug names the routing and the grounding check recognise: common stems by suffix plus a list.
DRUG_SUFFIX = re.compile(
    r"\b[a-z]{3,}(?:pril|sartan|olol|dipine|statin|formin|gliptin|gliflozin|glutide|prazole|tidine|cillin|"
    r"mycin|cycline|floxacin|azole|vir|mab|nib|tinib|parin|xaban|gatran|semide|thiazide|olone|sone|asone|"
    r"profen|oxacin|triptan|zepam|zolam|azepam|oxetine|aline|afil|tadine|codone|morphone|pam|lukast|terol|"
    r"tropium|phylline|caine|pramine|triptyline|xetine|lamide|trel|grel|ide)\b", re.I)
DRUGS = _any(
    "aspirin", "tylenol", "acetaminophen", "ibuprofen", "advil", "motrin", "aleve", "naproxen", "ultram",
    "tramadol", "lasix", "insulin", "metformin", "lisinopril", "norvasc", "amlodipine", "coumadin", "warfarin",
    "eliquis", "xarelto", "plavix", "prednisone", "synthroid", "levothyroxine", "zoloft", "prozac", "lexapro",
    "wellbutrin", "xanax", "ativan", "valium", "benadryl", "claritin", "zyrtec", "flonase", "albuterol",
    "singulair", "nexium", "prilosec", "protonix", "omeprazole", "pepcid", "tums", "lipitor", "crestor",
    "zocor", "glucophage", "januvia", "jardiance", "ozempic", "trulicity", "humira", "keflex", "augmentin",
    "amoxicillin", "azithromycin", "zithromax", "cipro", "doxycycline", "bactrim", "flexeril", "neurontin",
    "gabapentin", "lyrica", "mobic", "meloxicam", "toradol", "norco", "percocet", "oxycodone", "hydrocodone",
    "morphine", "imitrex", "sumatriptan", "toprol", "metoprolol", "coreg", "carvedilol", "hydrochlorothiazide",
    "spironolactone", "potassium", "vitamin d", "iron", "folic acid", "steroids?", "cortisone", "antibiotics?",
    "nitroglycerin", "digoxin", "allopurinol", "colchicine", "methotrexate", "plaquenil", "imdur", "entresto",
    "farxiga", "victoza", "lantus", "humalog", "novolog", "zantac", "miralax", "colace", "dulcolax",
    "sudafed", "mucinex", "robitussin", "melatonin", "cymbalta", "duloxetine", "sertraline", "fluoxetine",
    "citalopram", "escitalopram", "bupropion", "trazodone", "seroquel", "abilify", "lithium", "adderall",
    "ritalin", "epipen", "epinephrine", "nystatin", "diflucan", "fluconazole", "valtrex", "tamiflu",
    "zofran", "ondansetron", "reglan", "motrin", "excedrin", "fosamax", "calcium", "magnesium", "b12",
)
DOSE = re.compile(r"\b\d+(?:\.\d+)?\s*(?:mg|mcg|micrograms?|g|grams?|units?|ml|cc|puffs?|tablets?|pills?|"
                  r"capsules?|drops?|%)(?![a-z])", re.I)
NUMBER = re.compile(r"\b\d+(?:[.,/]\d+)*\b")

VITALS = _any("blood pressures?", "bp", "heart rate", "pulse", "temperature", "temp", "fever of",
              "oxygen(?: saturation| sat)?", "o2", "pulse ox", "respiratory rate", "respirations", "weight",
              "weigh", "bmi", "vitals?", "vital signs")
ALLERGY = _any("allerg(?:y|ies|ic)", "anaphylaxis", "hives from")
FOLLOW_UP = _any("(?<!for )(?<!for a )follow[ -]?up", "come back", "see you (?:back|again|in)",
                 "return(?:ing)? (?:to|in)", "check back", "recheck", "next visit", "next appointment")
EXAM = _any("exam(?:ination)?", "appreciate", "palpat(?:e|ion|able)", "tender(?:ness)?", "auscultation",
            "murmurs?", "gallops?", "rubs?", "lungs? (?:are|is|sound)", "clear to", "range of motion",
            "edema", "reflexes", "strength", "pulses", "bruits?", "crackles", "rales", "wheez(?:e|es|ing)",
            "effusion", "erythema", "swelling", "bruising", "deformity", "crepitus", "sensation", "intact",
            "normal", "abnormal", "distended", "soft", "nontender", "looking at", "listening to", "on my exam",
            "when I press", "bilaterally", "benign", "jvd", "thyromegaly", "adenopathy", "lymph")
RESULTS = _any("x-?rays?", "mri", "ct(?: scan)?", "cat scan", "ultrasound", "echo(?:cardiogram)?", "ekg", "ecg",
               "labs?", "lab work", "blood work", "bloodwork", "a1c", "hemoglobin", "cholesterol", "ldl",
               "results?", "showed", "shows", "revealed", "reveals", "came back", "imaging", "biopsy",
               "urinalysis", "culture", "scan", "stress test", "levels?", "creatinine", "glucose", "kidney function")
ASSESSMENT = _any("diagnos(?:is|ed|e)", "I think", "consistent with", "looks like", "likely", "impression",
                  "sounds like", "I believe", "suspect", "seems like", "you have (?:a|an)", "due to", "caused by",
                  "controlled", "uncontrolled", "stable", "worsening", "improv(?:ed|ing)", "flare")
PLAN = _any("prescrib(?:e|ed|ing)", "order(?:ed|ing)?", "refer(?:ral|red|ring)?", "recommend(?:ed)?",
            "we'll", "we will", "I'll", "I will", "going to", "want you to", "I'd like", "would like",
            "start(?:ed|ing)?", "continue", "increase", "decrease", "stop taking", "schedule", "therapy",
            "surgery", "procedure", "brace", "splint", "injection", "shot", "plan", "let's", "make sure",
            "should", "need to", "needs to", "monitor", "keep an eye", "avoid", "try", "send you", "get you",
            "put you on", "take", "dose", "adjust", "physical therapy", "counsel(?:ed|ing)?", "advise[d]?")
HISTORY = _any("history of", "surger(?:y|ies)", "operation", "diagnosed with", "smok(?:e|es|ed|ing|er)",
               "tobacco", "cigarettes?", "alcohol", "drink(?:s|ing)?", "drugs", "family", "mother", "father",
               "mom", "dad", "brother", "sister", "married", "wife", "husband", "kids", "children", "work(?:s|ing)?",
               "job", "retired", "exercise", "diet", "hypertension", "diabetes", "asthma", "copd",
               "heart failure", "kidney", "thyroid", "cancer", "depression", "transplant", "arthritis",
               "hospitali[sz]ed", "years ago", "in the past")
MEDICATION = _any("medications?", "medicines?", "meds", "taking", "prescription", "pills?", "inhaler",
                  "over the counter", "mg", "dose", "twice a day", "once a day", "daily")
SOCIAL_TALK = _any("hello", "hi", "hey", "good morning", "good afternoon", "nice to (?:see|meet)",
                   "good to see", "how are you", "how's it going", "thank you", "thanks", "bye", "goodbye",
                   "take care", "have a good", "dax", "weather", "vacation plans", "sounds good", "no problem",
                   "you're welcome", "that's great", "awesome", "cool", "perfect", "got it", "i see",
                   "any questions", "do you have any questions", "that's it", "nurse will")
# Talk about the visit itself, or commands to a dictation assistant: not content for a note.
META_TALK = re.compile(r"^(?:show me|pull up|let me (?:just )?(?:go over|talk about|take a look|look at|pull|see|"
                       r"get|review)|let's (?:go ahead and )?(?:talk about|go over|review|take a look|look at)|"
                       r"I'd like to tell|I'm going to tell)\b", re.I)
NEGATIVE_ANSWER = re.compile(r"^(?:no|nope|nah|not really|not at all|never|none|negative|I don't|I do not|"
                             r"I haven't|I have not|I didn't|I did not|I'm not|I am not|not that I know)\b", re.I)
POSITIVE_ANSWER = re.compile(r"^(?:yes|yeah|yep|yup|I do|I have|I did|sometimes|a little|a bit|some|definitely|"
                             r"absolutely|sure have|uh-huh|occasionally|once in a while)\b", re.I)
QUESTION_START = re.compile(r"^(?:and |so |okay |now )*(?:do|does|did|have|has|had|are|is|was|were|any|how about|"
                            r"what about|can|could|would|will|ever|no)\b", re.I)
# Stop words for content counting (what makes a sentence worth a line).
STOP = wordset("""a an the and or but so if then of to in on at for with from by about as into like through
over after before under again very just really also too quite pretty some any all this that these those there here
it its it's is are was were be been being am do does did doing have has had having i me my we us our you your he him
his she her they them their what which who whom when where why how not no yes yeah okay ok alright right well oh
um uh mm hmm can could would should will shall may might must going go get got gonna know think see look let lets
let's say said tell told thing things stuff kind sort lot little bit one ones now today just maybe sure yep yup good
great fine""")
