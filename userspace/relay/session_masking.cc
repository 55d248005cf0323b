// Session: result masking glue — the profile for the session's principal, the catalog the
// column rules need (loaded before a statement runs, the client pump paused meanwhile), and
// the backend messages masking rewrites.
#include "userspace/common/logging.h"
#include "userspace/relay/session.h"

namespace dbw::relay {

namespace {
// Masked rows are buffered whole; a larger row streams and so cannot be masked.
constexpr size_t kMaskedRowLimit = 64u << 20;
}  // namespace

void Session::UpdateMasking(const std::shared_ptr<const policy::CompiledPolicy>& policy) {
  if (masked_policy_ == policy && masked_app_ == state_.application_name()) return;
  const policy::Principal& p = PolicyPrincipal(policy);
  auto profile = policy->Masking({target_->options.name, target_->options.env}, p);
  bool was_active = masking_.active();
  // Under one policy a session never unmasks itself by renaming (application_name): only a
  // policy change can lift masking from a session that had it.
  if (!profile && was_active && masked_policy_ == policy) return;
  masking_.SetProfile(std::move(profile), deps_.mask_hmac);
  masked_policy_ = policy;
  masked_app_ = state_.application_name();
  if (masking_.active() != was_active)
    upstream_decoder_.set_stream_threshold(masking_.active() ? kMaskedRowLimit
                                                             : deps_.options->stream_threshold);
}

bool Session::AwaitCatalog(bool need_functions) {
  if (catalog_checked_) {  // the statement resumed after its load, successful or not
    catalog_checked_ = false;
    return false;
  }
  if (!masking_.needs_catalog() && !need_functions) return false;
  if (masking_.catalog_miss()) {
    // A result named a relation the catalog did not know (created since): read it again.
    worker_->catalog.Invalidate(target_->options.name, state_.database());
    masking_.clear_catalog_miss();
  }
  std::weak_ptr<Session> weak = weak_from_this();
  in_catalog_get_ = true;
  catalog_ready_now_ = false;
  worker_->catalog.Get(*target_, state_.user(), state_.database(),
                       [weak](std::shared_ptr<const CatalogSnapshot> snapshot, const Status& st) {
                         if (auto self = weak.lock()) self->OnCatalog(std::move(snapshot), st);
                       });
  in_catalog_get_ = false;
  if (catalog_ready_now_) return false;
  pause_ = Pause::kWaitingCatalog;
  return true;
}

void Session::OnCatalog(std::shared_ptr<const CatalogSnapshot> snapshot, const Status& status) {
  // Without a catalog every column from a table is withheld (fail closed); the next statement
  // tries again.
  if (!status.ok()) deps_.metrics->masking_catalog_failures->Add();
  catalog_ = snapshot;
  masking_.SetCatalog(std::move(snapshot));
  if (in_catalog_get_) {
    catalog_ready_now_ = true;
    return;
  }
  if (closed_ || pause_ != Pause::kWaitingCatalog) return;
  pause_ = Pause::kCatalogReady;
  catalog_checked_ = true;
  if (!upstream_->writing) ResumeClient();
}

bool Session::MaskBackend(const pg::Frame& frame, pg::Bytes* out, std::string* reason,
                          bool* handled) {
  *handled = false;
  if (!masking_.active()) return true;
  bool ok = true;
  switch (frame.type) {
    case pg::be::kRowDescription:
      ok = masking_.OnRowDescription(frame, state_.HeadResultSource(), out, reason);
      break;
    case pg::be::kDataRow:
      ok = masking_.OnDataRow(frame, state_.HeadResultSource(), out, reason);
      break;
    case pg::be::kCopyOutResponse: {
      const auto* note = dynamic_cast<const DecisionNote*>(state_.HeadNote());
      const sql::StatementFacts* copy = nullptr;
      if (note != nullptr && note->facts && note->facts->statements.size() == 1)
        copy = &note->facts->statements.front();
      ok = masking_.OnCopyOutResponse(frame, copy, out, reason);
      break;
    }
    case pg::be::kNotificationResponse:
      ok = masking_.OnNotification(frame, out, reason);
      break;
    case pg::be::kCopyData:
      ok = masking_.OnCopyData(frame, out, reason);
      break;
    case pg::be::kErrorResponse:
    case pg::be::kNoticeResponse:
      ok = masking_.OnErrorOrNotice(frame, out, reason);
      break;
    default:
      return true;
  }
  *handled = ok;
  if (ok) deps_.metrics->masked_messages->Add();
  return ok;
}

}  // namespace dbw::relay
