"""Readers for standard annotation formats (DESIGN §6), used as ground truth by `zsar score`.

Input: UCF101 split lists (`classInd.txt`, `testlist0N.txt`), HMDB51 split files
(`<class>_test_splitN.txt`), THUMOS14 per-class files (`<Class>_test.txt` + `Ambiguous_test.txt`),
ActivityNet JSON (ground truth `database{...}` and predictions `results{...}`), UCF-Crime temporal
annotation lines and split lists (`Anomaly_Test.txt`), Charades-STA moments
(`VIDEO START END##SENTENCE`), `video,label` list files, zsar artifacts (`frames` label column,
`predictions` true_label column) and Kinetics-400/600/700 CSVs
(`label,youtube_id,time_start,time_end,split`, ids `{youtube_id}_{start:06d}_{end:06d}`).
Output: plain in-memory ground truth (`ClassificationGT`, `LocalizationGT`, `AnomalyGT`,
`GroundingGT`) and, for
ActivityNet predictions, an `intervals` table.

Every reader rejects a malformed line with `file:line: reason` (InputError): a silently skipped
annotation changes a published number.

The modules: `common` (keys, GT containers, line parsing), `classification` (UCF101, HMDB51, label
lists, artifact labels), `temporal` (THUMOS14, ActivityNet), `anomaly` (UCF-Crime), `grounding`
(Charades-STA, query files), `kinetics` (Kinetics CSVs, also read as extract-frames inputs) and
`detect` (format detection and `load_ground_truth`, which dispatches to the others).
"""

from zsar_cli.datasets.anomaly import UCF_CRIME_CLASSES, read_ucf_crime, read_ucf_crime_split
from zsar_cli.datasets.classification import (
    read_artifact_labels,
    read_hmdb51,
    read_hmdb51_split_file,
    read_label_list,
    read_ucf101_classind,
    read_ucf101_split,
)
from zsar_cli.datasets.common import (
    AnomalyGT,
    ClassificationGT,
    LocalizationGT,
    normalize_label,
    video_key,
)
from zsar_cli.datasets.detect import (
    ANOMALY_FORMATS,
    CLASSIFICATION_FORMATS,
    GROUNDING_FORMATS,
    GT_FORMATS,
    LOCALIZATION_FORMATS,
    GroundTruth,
    detect_gt_format,
    load_ground_truth,
)
from zsar_cli.datasets.grounding import (
    GroundingGT,
    Moment,
    QueryLine,
    query_sentences,
    read_charades_sta,
    read_queries,
)
from zsar_cli.datasets.kinetics import read_kinetics
from zsar_cli.datasets.temporal import (
    AMBIGUOUS,
    read_activitynet,
    read_activitynet_predictions,
    read_thumos14,
)

__all__ = [
    "AMBIGUOUS",
    "ANOMALY_FORMATS",
    "CLASSIFICATION_FORMATS",
    "GROUNDING_FORMATS",
    "GT_FORMATS",
    "LOCALIZATION_FORMATS",
    "UCF_CRIME_CLASSES",
    "AnomalyGT",
    "ClassificationGT",
    "GroundTruth",
    "GroundingGT",
    "LocalizationGT",
    "Moment",
    "QueryLine",
    "detect_gt_format",
    "load_ground_truth",
    "normalize_label",
    "query_sentences",
    "read_activitynet",
    "read_activitynet_predictions",
    "read_artifact_labels",
    "read_charades_sta",
    "read_hmdb51",
    "read_hmdb51_split_file",
    "read_kinetics",
    "read_label_list",
    "read_queries",
    "read_thumos14",
    "read_ucf101_classind",
    "read_ucf101_split",
    "read_ucf_crime",
    "read_ucf_crime_split",
    "video_key",
]
