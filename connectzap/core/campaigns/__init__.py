"""Campaigns: one approved template to a list of customers, through the send gate, within limits.

:mod:`.states` (the state machine), :mod:`.audience` (files and lists), :mod:`.send_window`
(quiet hours in each recipient's time zone), :mod:`.engine` (admission and outcomes, run by
the workers), :mod:`.service` (what the CLI and the REST API call).
"""

from .audience import BadAudience, BadLine, Recipient, format_of, read_file, read_items
from .service import (RESULT_COLUMNS, AudienceResult, CampaignReport, CampaignView, Campaigns, InvalidLines,
                      NoRecipients, Preview, report_csv, results_csv)
from .states import Action, State

__all__ = ["RESULT_COLUMNS", "Action", "AudienceResult", "BadAudience", "BadLine", "CampaignReport", "CampaignView",
           "Campaigns", "InvalidLines", "NoRecipients", "Preview", "Recipient", "State", "format_of", "read_file",
           "read_items", "report_csv", "results_csv"]
