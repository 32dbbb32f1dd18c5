/**
 * Quantum jobs panel: the user's jobs from the audit ledger (time, job id,
 * circuit hash, backend, shots, decision, signature), a job's histogram and
 * full provenance (manifest, result, ledger inclusion proofs) with a copy
 * button, and "Verify ledger". A denial shows its decision id and links to the job.
 */

import * as React from 'react';

import { Clipboard } from '@jupyterlab/apputils';
import { ReactWidget, refreshIcon, copyIcon } from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';

import { describeError, IJobDetail, IJobSummary, ILedgerVerification } from './api';
import { circuitsCounts, histogramBars, percent } from './histogram';
import { atomIcon } from './icons';
import { circuitColumn, newestFirst, provenanceJSON, shortId, signatureState } from './jobs';
import { QSecureService } from './service';
import { formatWhen } from './timeleft';

type Trans = QSecureService['trans'];

function Histogram({
  counts,
  trans
}: {
  counts: Record<string, number>;
  trans: Trans;
}): JSX.Element {
  const bars = histogramBars(counts);
  return (
    <div className="jp-qsecure-histogram" role="img" aria-label={trans.__('Histogram of outcomes')}>
      {bars.map(bar => (
        <div
          key={bar.outcome}
          className="jp-qsecure-bar-row"
          title={`${bar.outcome}: ${bar.count} (${percent(bar.fraction)})`}
        >
          <code className="jp-qsecure-bar-label">{bar.outcome}</code>
          <span className="jp-qsecure-bar-track">
            <span
              className="jp-qsecure-bar"
              style={{ width: `${(bar.width * 100).toFixed(2)}%` }}
            />
          </span>
          <span className="jp-qsecure-bar-count">{bar.count}</span>
        </div>
      ))}
    </div>
  );
}

function Section({
  title,
  value,
  trans
}: {
  title: string;
  value: unknown;
  trans: Trans;
}): JSX.Element | null {
  if (value === null || value === undefined) {
    return null;
  }
  const text = JSON.stringify(value, null, 2);
  return (
    <details className="jp-qsecure-provenance">
      <summary>
        {title}
        <button
          className="jp-qsecure-icon-button"
          title={trans.__('Copy %1', title)}
          aria-label={trans.__('Copy %1', title)}
          onClick={event => {
            event.preventDefault();
            Clipboard.copyToSystem(text);
          }}
        >
          <copyIcon.react tag="span" />
        </button>
      </summary>
      <pre>{text}</pre>
    </details>
  );
}

function CopyButton({ text, label }: { text: string; label: string }): JSX.Element {
  return (
    <button
      className="jp-qsecure-icon-button"
      title={label}
      aria-label={label}
      onClick={event => {
        event.stopPropagation();
        Clipboard.copyToSystem(text);
      }}
    >
      <copyIcon.react tag="span" />
    </button>
  );
}

function SignatureBadge({ job, trans }: { job: IJobSummary; trans: Trans }): JSX.Element {
  const state = signatureState(job);
  const text = {
    verified: trans.__('verified'),
    failed: trans.__('NOT verified'),
    unsigned: trans.__('unsigned')
  }[state];
  return <span className={`jp-qsecure-sig jp-qsecure-sig-${state}`}>{text}</span>;
}

function JobDetailView({ detail, trans }: { detail: IJobDetail; trans: Trans }): JSX.Element {
  const job = detail.job;
  const circuits = circuitsCounts(detail.result?.counts);
  return (
    <div className="jp-qsecure-job-detail">
      <h3>
        {trans.__('Job')} <code title={job.job_id}>{job.job_id}</code>
        <CopyButton text={job.job_id} label={trans.__('Copy the job id')} />
      </h3>
      <dl>
        <dt>{trans.__('Decision')}</dt>
        <dd>
          <span className={`jp-qsecure-decision jp-qsecure-decision-${job.decision}`}>
            {job.decision}
          </span>{' '}
          <code title={trans.__('decision id')}>{job.decision_id}</code>
          <CopyButton text={job.decision_id} label={trans.__('Copy the decision id')} />
        </dd>
        {job.rule && (
          <>
            <dt>{trans.__('Rule')}</dt>
            <dd>{job.rule}</dd>
          </>
        )}
        {job.message && (
          <>
            <dt>{trans.__('Message')}</dt>
            <dd>{job.message}</dd>
          </>
        )}
        <dt>{trans.__('Status')}</dt>
        <dd>{job.status}</dd>
        <dt>{trans.__('Backend, shots')}</dt>
        <dd>
          {job.backend ?? '–'}, {job.shots ?? '–'}
        </dd>
        <dt>{trans.__('Signature')}</dt>
        <dd>
          <SignatureBadge job={job} trans={trans} />
          {detail.verification?.problems.map((p, i) => (
            <div key={i} className="jp-qsecure-error">
              {p}
            </div>
          ))}
        </dd>
        <dt>{trans.__('Ledger')}</dt>
        <dd>
          {detail.proofs.map(p => (
            <span
              key={p.index}
              className={`jp-qsecure-sig jp-qsecure-sig-${p.verified ? 'verified' : 'failed'}`}
            >
              #{p.index} {p.verified ? trans.__('included') : trans.__('proof fails')}
            </span>
          ))}
        </dd>
      </dl>
      {circuits.map((counts, i) => (
        <div key={i}>
          {circuits.length > 1 && (
            <h4>
              {trans.__('Circuit %1', i + 1)} <code>{shortId(job.circuit_hashes[i])}</code>
            </h4>
          )}
          <Histogram counts={counts} trans={trans} />
        </div>
      ))}
      <div className="jp-qsecure-row">
        <button
          className="jp-mod-styled jp-mod-accept"
          onClick={() => Clipboard.copyToSystem(provenanceJSON(detail))}
        >
          <copyIcon.react tag="span" /> {trans.__('Copy provenance')}
        </button>
      </div>
      <Section title={trans.__('Manifest (signed)')} value={detail.manifest} trans={trans} />
      <Section title={trans.__('Manifest statement')} value={detail.statement} trans={trans} />
      <Section title={trans.__('Result')} value={detail.result} trans={trans} />
      <Section title={trans.__('Ledger entries')} value={detail.entries} trans={trans} />
      <Section title={trans.__('Inclusion proofs')} value={detail.proofs} trans={trans} />
    </div>
  );
}

function JobsView({ panel }: { panel: JobsPanel }): JSX.Element {
  const service = panel.service;
  const trans = service.trans;
  const [jobs, setJobs] = React.useState<IJobSummary[] | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const [detail, setDetail] = React.useState<IJobDetail | null>(null);
  const [selected, setSelected] = React.useState<string | null>(panel.pending);
  const [verification, setVerification] = React.useState<ILedgerVerification | null>(null);
  const [verifying, setVerifying] = React.useState(false);

  const refresh = React.useCallback(async () => {
    try {
      const answer = await service.client.listJobs({ limit: service.settings.jobsLimit });
      setJobs(newestFirst(answer.jobs));
      setError(null);
    } catch (err) {
      setError(describeError(err, trans));
    }
  }, [service]);

  React.useEffect(() => {
    void refresh();
  }, [refresh]);

  React.useEffect(() => {
    const onSelect = (_: unknown, id: string) => setSelected(id);
    panel.selectRequested.connect(onSelect);
    return () => {
      panel.selectRequested.disconnect(onSelect);
    };
  }, [panel]);

  React.useEffect(() => {
    if (!selected) {
      setDetail(null);
      return;
    }
    let live = true;
    service.client.job(selected).then(
      d => live && (setDetail(d), setError(null)),
      err => live && setError(describeError(err, trans))
    );
    return () => {
      live = false;
    };
  }, [selected, service]);

  const verify = async () => {
    setVerifying(true);
    try {
      setVerification(await service.client.verifyLedger());
    } catch (err) {
      setError(describeError(err, trans));
    } finally {
      setVerifying(false);
    }
  };

  const now = Date.now();
  return (
    <div className="jp-qsecure-Jobs">
      <div className="jp-qsecure-panel-header">
        <h2>{trans.__('Quantum jobs')}</h2>
        <button
          className="jp-mod-styled jp-mod-reject"
          disabled={verifying}
          onClick={() => void verify()}
        >
          {verifying ? trans.__('Verifying…') : trans.__('Verify ledger')}
        </button>
        <button
          className="jp-qsecure-icon-button"
          title={trans.__('Refresh')}
          aria-label={trans.__('Refresh')}
          onClick={() => void refresh()}
        >
          <refreshIcon.react tag="span" />
        </button>
      </div>
      {verification && (
        <div className={verification.ok ? 'jp-qsecure-ok' : 'jp-qsecure-error'} role="status">
          {verification.ok
            ? trans.__(
                'Ledger verified: %1 entries, %2 checkpoints, %3 signatures (%4 s).',
                verification.entries,
                verification.checkpoints,
                verification.signatures,
                verification.seconds.toFixed(2)
              )
            : trans.__('Ledger does NOT verify:')}
          {verification.problems.map((p, i) => (
            <div key={i}>{p}</div>
          ))}
        </div>
      )}
      {error && <div className="jp-qsecure-error">{error}</div>}
      {jobs && jobs.length === 0 && (
        <p className="jp-qsecure-muted">
          {trans.__('No jobs yet: run %qsubmit in a qsecure notebook.')}
        </p>
      )}
      {jobs && jobs.length > 0 && (
        <ul className="jp-qsecure-job-list" aria-label={trans.__('Your jobs, newest first')}>
          {jobs.map(job => (
            <li
              key={job.job_id}
              className={`jp-qsecure-job${
                selected === job.job_id || selected === job.decision_id ? ' jp-mod-selected' : ''
              }`}
              onClick={() => setSelected(job.job_id)}
              tabIndex={0}
              onKeyDown={event => event.key === 'Enter' && setSelected(job.job_id)}
            >
              <div className="jp-qsecure-job-line">
                <span className={`jp-qsecure-decision jp-qsecure-decision-${job.decision}`}>
                  {job.decision}
                </span>
                <code title={trans.__('job id %1', job.job_id)}>{shortId(job.job_id)}</code>
                <span className="jp-qsecure-muted" title={job.decided_at}>
                  {formatWhen(job.decided_at, now, trans)}
                </span>
                <SignatureBadge job={job} trans={trans} />
              </div>
              <div className="jp-qsecure-job-line jp-qsecure-muted">
                <span title={job.circuit_hashes.join('\n')}>
                  {trans.__('circuit')} <code>{circuitColumn(job)}</code>
                </span>
                <span>{job.backend ?? '–'}</span>
                {job.shots !== null && <span>{trans._n('%1 shot', '%1 shots', job.shots)}</span>}
              </div>
              {job.decision === 'denied' && (
                <div className="jp-qsecure-job-line jp-qsecure-muted">
                  {trans.__('decision id')} <code>{job.decision_id}</code>
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
      {detail && <JobDetailView detail={detail} trans={trans} />}
    </div>
  );
}

export class JobsPanel extends ReactWidget {
  constructor(readonly service: QSecureService) {
    super();
    this.id = 'jp-qsecure-jobs';
    this.addClass('jp-qsecure-Panel');
    this.title.icon = atomIcon;
    this.title.caption = service.trans.__('Quantum jobs');
  }

  /** Show the job with this job id or decision id. */
  select(id: string): void {
    this.pending = id;
    this._selectRequested.emit(id);
  }

  get selectRequested(): ISignal<this, string> {
    return this._selectRequested;
  }

  /** A selection asked for before the panel was first shown. */
  pending: string | null = null;

  protected onAfterShow(): void {
    if (!this._shown) {
      this._shown = true;
      this.update();
    }
  }

  render(): JSX.Element | null {
    return this._shown ? <JobsView panel={this} /> : null;
  }

  private _shown = false;
  private _selectRequested = new Signal<this, string>(this);
}
