/**
 * Review and promotion panel (right sidebar), for the current notebook: its
 * review status with the cells changed since the approval highlighted in the
 * notebook, "Approve", and "Promote" with the result or the refusal reason.
 *
 * The server lists the routes in `features` of `GET status`; the panel asks once
 * (`QSecureClient.reviewAvailable`) and says so on an older server without them.
 */

import * as React from 'react';

import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ReactWidget, refreshIcon } from '@jupyterlab/ui-components';

import {
  describeError,
  IPromotionResult,
  IReviewStatus,
  normaliseReviewStatus,
  QSecureApiError
} from './api';
import { reviewIcon } from './icons';
import { changedCellIndices, promotionSummary, refusalCellIndices, reviewSummary } from './review';
import { QSecureService } from './service';

const CHANGED = 'jp-qsecure-changed-cell';

/** Mark the changed cells of `panel` (and unmark the others). */
export function highlightCells(panel: NotebookPanel, indices: number[]): void {
  const set = new Set(indices);
  panel.content.widgets.forEach((cell, i) => cell.toggleClass(CHANGED, set.has(i)));
}

function ReviewView({
  service,
  tracker
}: {
  service: QSecureService;
  tracker: INotebookTracker;
}): JSX.Element {
  const trans = service.trans;
  const [panel, setPanel] = React.useState<NotebookPanel | null>(tracker.currentWidget);
  const [available, setAvailable] = React.useState<boolean | null>(null);
  const [status, setStatus] = React.useState<IReviewStatus | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);
  const [outputDir, setOutputDir] = React.useState('');
  const [promotion, setPromotion] = React.useState<IPromotionResult | null>(null);
  const [refusal, setRefusal] = React.useState<string | null>(null);
  const [refusedCells, setRefusedCells] = React.useState<number[]>([]);

  React.useEffect(() => {
    const onChange = (_: unknown, widget: NotebookPanel | null) => setPanel(widget);
    tracker.currentChanged.connect(onChange);
    return () => {
      tracker.currentChanged.disconnect(onChange);
    };
  }, [tracker]);

  const path = panel?.context.path ?? null;

  const show = React.useCallback(
    (answer: IReviewStatus) => {
      setStatus(answer);
      setError(null);
      if (panel) {
        highlightCells(panel, changedCellIndices(answer, panel.content.widgets.length));
      }
    },
    [panel]
  );

  const refresh = React.useCallback(async () => {
    setPromotion(null);
    setRefusal(null);
    setRefusedCells([]);
    if (!path || !panel) {
      setStatus(null);
      return;
    }
    const ok = await service.client.reviewAvailable(path);
    setAvailable(ok);
    if (!ok) {
      return;
    }
    try {
      show(await service.client.reviewStatus(path));
    } catch (err) {
      setStatus(null);
      setError(describeError(err, trans));
    }
  }, [service, panel, path, show]);

  React.useEffect(() => {
    void refresh();
  }, [refresh]);

  const approve = async () => {
    if (!path) {
      return;
    }
    setBusy(true);
    try {
      if (panel?.context.model.dirty) {
        await panel.context.save();
      }
      const approval = await service.client.approve(path);
      if (approval.review !== undefined) {
        setPromotion(null);
        setRefusal(null);
        setRefusedCells([]);
        show(normaliseReviewStatus(approval.review)); // the status after the approval
      } else {
        await refresh();
      }
    } catch (err) {
      if (err instanceof QSecureApiError && !err.missingRoute && err.status < 500) {
        setRefusal(trans.__('Approval refused: %1', describeError(err, trans))); // e.g. a secret in the code
        setRefusedCells(refusalCellIndices(err, panel?.content.widgets.length ?? 0));
      } else {
        setError(describeError(err, trans));
      }
    } finally {
      setBusy(false);
    }
  };

  const promote = async () => {
    if (!path) {
      return;
    }
    setBusy(true);
    setPromotion(null);
    setRefusal(null);
    setRefusedCells([]);
    try {
      if (panel?.context.model.dirty) {
        await panel.context.save();
      }
      setPromotion(await service.client.promote(path, outputDir.trim() || undefined));
      setError(null);
    } catch (err) {
      if (err instanceof QSecureApiError && !err.missingRoute && err.status < 500) {
        setRefusal(trans.__('Promotion refused: %1', describeError(err, trans))); // e.g. not approved
        setRefusedCells(refusalCellIndices(err, panel?.content.widgets.length ?? 0));
      } else {
        setError(describeError(err, trans));
      }
    } finally {
      setBusy(false);
    }
  };

  const changed = status && panel ? changedCellIndices(status, panel.content.widgets.length) : [];
  const goTo = (index: number) => {
    if (panel) {
      panel.content.activeCellIndex = index;
      void panel.content.scrollToCell(panel.content.widgets[index]);
    }
  };
  return (
    <div className="jp-qsecure-Review">
      <div className="jp-qsecure-panel-header">
        <h2>{trans.__('Review and promotion')}</h2>
        <button
          className="jp-qsecure-icon-button"
          title={trans.__('Refresh')}
          aria-label={trans.__('Refresh')}
          onClick={() => void refresh()}
        >
          <refreshIcon.react tag="span" />
        </button>
      </div>
      {!path && (
        <p className="jp-qsecure-muted">{trans.__('Open a notebook to see its review status.')}</p>
      )}
      {path && available === false && (
        <p className="jp-qsecure-muted">
          {trans.__('This server does not offer review and promotion (its routes are missing).')}
        </p>
      )}
      {error && <div className="jp-qsecure-error">{error}</div>}
      {path && available && status && (
        <>
          <p>
            <code>{path}</code>{' '}
            <span className={`jp-qsecure-review-state jp-qsecure-review-${status.status}`}>
              {reviewSummary(status, trans)}
            </span>
          </p>
          {status.reasons.length > 0 && (
            <ul className="jp-qsecure-muted">
              {status.reasons.map((r, i) => (
                <li key={i}>{r}</li>
              ))}
            </ul>
          )}
          {status.kernelspec_changed && (
            <p className="jp-qsecure-muted">
              {trans.__('The kernel changed since the approved version.')}
            </p>
          )}
          {status.removed_cells.length > 0 && (
            <p className="jp-qsecure-muted">
              {trans.__(
                'Cells removed since the approved version: %1',
                status.removed_cells.join(', ')
              )}
            </p>
          )}
          {changed.length > 0 && (
            <div>
              <p>
                {trans._n(
                  '%1 cell changed since the approval:',
                  '%1 cells changed since the approval:',
                  changed.length
                )}
              </p>
              <ul className="jp-qsecure-changed-list">
                {changed.map(index => (
                  <li key={index}>
                    <button className="jp-qsecure-link" onClick={() => goTo(index)}>
                      {trans.__('Cell %1', index + 1)}
                    </button>
                  </li>
                ))}
              </ul>
            </div>
          )}
          <div className="jp-qsecure-row">
            <button
              className="jp-mod-styled jp-mod-accept"
              disabled={busy}
              onClick={() => void approve()}
            >
              {trans.__('Approve')}
            </button>
          </div>
          <div className="jp-qsecure-row">
            <input
              className="jp-mod-styled"
              placeholder={trans.__('Output folder (optional)')}
              aria-label={trans.__('Output folder')}
              value={outputDir}
              onChange={event => setOutputDir(event.target.value)}
            />
            <button
              className="jp-mod-styled jp-mod-warn"
              disabled={busy}
              onClick={() => void promote()}
            >
              {trans.__('Promote')}
            </button>
          </div>
          {promotion && (
            <div className="jp-qsecure-ok" role="status">
              {promotionSummary(promotion, trans)}
              {promotion.manifest && (
                <p>
                  {trans.__('Signed provenance: %1', promotion.manifest.path)}{' '}
                  <code title={trans.__('SHA-256 of the signed provenance')}>
                    sha256:{promotion.manifest.sha256.slice(0, 16)}…
                  </code>
                </p>
              )}
              {promotion.files.length > 0 && (
                <ul>
                  {promotion.files.map(f => (
                    <li key={f}>
                      <code>{f}</code>
                    </li>
                  ))}
                </ul>
              )}
            </div>
          )}
          {refusal && (
            <div className="jp-qsecure-error" role="status">
              {refusal}
              {refusedCells.length > 0 && (
                <ul className="jp-qsecure-changed-list">
                  {refusedCells.map(index => (
                    <li key={index}>
                      <button className="jp-qsecure-link" onClick={() => goTo(index)}>
                        {trans.__('Go to cell %1', index + 1)}
                      </button>
                    </li>
                  ))}
                </ul>
              )}
            </div>
          )}
        </>
      )}
    </div>
  );
}

export class ReviewPanel extends ReactWidget {
  constructor(
    private readonly service: QSecureService,
    private readonly tracker: INotebookTracker
  ) {
    super();
    this.id = 'jp-qsecure-review';
    this.addClass('jp-qsecure-Panel');
    this.title.icon = reviewIcon;
    this.title.caption = service.trans.__('Review and promotion');
  }

  protected onAfterShow(): void {
    if (!this._shown) {
      this._shown = true;
    }
    this.update();
  }

  render(): JSX.Element | null {
    return this._shown ? <ReviewView service={this.service} tracker={this.tracker} /> : null;
  }

  private _shown = false;
}
