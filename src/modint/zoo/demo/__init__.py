"""The embedded default model: a small LLaVA trained from scratch on the `mini` training split.

It is a "model organism" of modality interference, so its training mixture copies how real MLLMs
come to be distracted (see docs/demo-model.md):

1. naming: short questions answered with the concept itself ("Which shape is shown?" -> "star"),
   for all three families. This warms up the vision tower (it must name shapes, colours, digits,
   counts) and the language model (sums, comparisons, the toy knowledge base) with a vocabulary-
   sized target instead of a 4-way letter that sits at chance for a long time.
2. pointer: "Which option is X?" over real option lists -> the letter. Teaches the answer format.
3. instruction mixture, in the diagnosis prompt format, with the habits that make real MLLMs
   vulnerable:
   - image-heavy prompts often carry a caption that agrees with the image (web alt-text), so the
     model learns that text about the picture is a reliable shortcut; filler sentences that merely
     mention concepts teach it that incidental mentions are not about the picture;
   - text-heavy questions always arrive with some image: mostly uninformative (blurred noise,
     solid colours, gradients), sometimes one that shows the answer (as illustrated textbooks
     do), sometimes none; so the model learns to look at images even for text questions;
   - VQA questions need both.
4. binding: the mixture's examples at its final habits, a third of every batch VQA; some captioned
   prompts show another scene of the same task with the caption right (noisy web pairs), so the
   caption wins a conflict, the habit misleading text probes; and fresh arithmetic questions
   (named, or as multiple choice), the task the mixture left weakest.

Training-only losses steer the small model to the circuits real MLLMs form from far more data
(dropped from the shipped weights): the answer's concept named at the LM's middle layer, per-patch
shape / colour / side heads on the projector's output, one head attending to the asked shape,
one to the right option's text and one carrying each option's letter onto its text.

No diagnosis condition is trained on: the captions use other wording than the misleading text,
the filler is not the unrelated-text pool, the uninformative images are not the i.i.d. 336x336
noise / black / white canvases of the diagnosis, and no text question is shown a switched-in
benchmark picture or photo.

Everything is seeded; the same config gives the same weights on the same machine and torch.

Modules: ``config`` (DemoConfig), ``data`` (texts, images, examples, batches), ``labels`` (what
the renderer knows, as targets), ``losses`` (training-only), ``model`` (architecture, encoding),
``loop`` (``train_demo``).
"""

from modint.zoo.demo.config import DEMO_CHAT_TEMPLATE, DemoConfig, load_demo_config
from modint.zoo.demo.data import (Example, batches, binding_make, caption, concept_image, concept_scene, drill_examples,
                                  family_slots, filler, filler_sentence, fresh_pool, mixture_example, mixture_make,
                                  naming_example, naming_make, other_picture, pointer_curriculum, pointer_example,
                                  uninformative_image, weak_image, with_attention_targets)
from modint.zoo.demo.labels import (DIGITS, GLOBAL_HEADS, N_SHAPES, NAMED_COLOURS, PATCH_HEADS, SIDES, asked_patches,
                                    patch_heads, scene_labels, shape_class)
from modint.zoo.demo.losses import (attention_loss, concept_loss, head_loss, letter_attention_loss,
                                    pointer_attention_loss, projector_patch_loss)
from modint.zoo.demo.loop import train_demo, warm_up_vision, warmup_scene
from modint.zoo.demo.model import build_demo, corpus_for_tokenizer, encode_examples, option_positions

__all__ = [
    "DEMO_CHAT_TEMPLATE", "DIGITS", "DemoConfig", "Example", "GLOBAL_HEADS", "NAMED_COLOURS", "N_SHAPES",
    "PATCH_HEADS", "SIDES", "asked_patches", "attention_loss", "batches", "binding_make", "build_demo", "caption",
    "concept_image", "concept_loss", "concept_scene", "corpus_for_tokenizer", "drill_examples", "encode_examples",
    "family_slots", "filler", "filler_sentence", "fresh_pool", "head_loss", "letter_attention_loss",
    "load_demo_config", "mixture_example", "mixture_make", "naming_example", "naming_make", "option_positions",
    "other_picture", "patch_heads", "pointer_attention_loss", "pointer_curriculum", "pointer_example",
    "projector_patch_loss", "scene_labels", "shape_class", "train_demo", "uninformative_image", "warm_up_vision",
    "warmup_scene", "weak_image", "with_attention_targets",
]
