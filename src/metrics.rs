//! Segmentation metrics: Dice, IoU, HD95 and ASSD in millimetres.
