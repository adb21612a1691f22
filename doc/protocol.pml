/*
 * protocol.pml -- Promela model of the vfile volume protocol.
 * Explained in doc/protocol.md; run with `make model-check`.
 *
 * It follows the write order documented at the top of src/lib/volume.c (mount,
 * unmount, remove) and src/lib/manager.c with src/lib/handlers.c (claims, start,
 * stop, check, restart, idle-stop, lease loss).  One volume; NH hosts mount and unmount it; NM
 * managers run the watchers/reconciler and the file servers; one remover; a
 * fault injector crashes managers and expires leases.
 *
 * Abstractions:
 *  - every KV request (lock+reads, txn with its compares, a read) is one atomic
 *    step; a VERSION_EQ compare on a key that only changes under the lock the
 *    writer holds is folded into the LOCK_HELD compare;
 *  - a lock is held while its variable names the holder; a lease's expiry
 *    releases its locks and deletes the keys attached to it (claims, server/);
 *  - watcher events, the periodic reconciler and the server/ watch are one
 *    level-triggered guard each (a manager may act whenever the store says so);
 *  - "mine" (node + lease id) is the manager id; a re-granted lease starts with
 *    nothing attached, so an old claim or server key never matches it.
 *
 * Options (spin -D...):
 *   ORIGINAL_STOP_RACE  the stop flips Ready without the compare on gref (the
 *                       seed design's bug): spin must find a violation.
 *   NOTIMEOUT           a mount waits for Mounted without a time-out: an invalid
 *                       end state then means a mount wedged.
 *   DAEMON_CRASH        a crash kills the daemon only: its sshd keeps running
 *                       (the sftp driver leaves it for a restarted daemon to adopt,
 *                       which the model does not restart).  Default: the manager
 *                       host dies with its servers.
 *   STOP_CLAIM_RACE     src/lib/manager.c before ee56f8d: mgr_do_stop did not re-check
 *                       server/ under the state lock (it read server/ only
 *                       before the stop claim): spin finds two servers.  The
 *                       default model is the code as it is (the re-check).
 *   RECREATE            the remover may create the volume again after removing
 *                       it (server/<vol> of the old incarnation may still be
 *                       there: a start waits for its manager to delete it).
 *   STOP_ANY_MANAGER    the revision before 7d29adf: any manager claims a stop and
 *                       the stop txn releases the state lock: two servers.
 *   OLD_REMOVE          (with RECREATE) remove deleted server/<vol> too, as
 *                       before commit 7ceb3ce: spin finds two servers.
 *   CRASHES=n  ZOMBIES=n  HOSTEXP=n  MOUNTS=n  RETRIES=n  NOREMOVE  NOIDLE
 *
 * Remove leaves server/<vol> (it is attached to the serving manager's lease):
 * the serving manager stops its server and deletes the key (its stop handler,
 * its check on a start trigger, every reconcile pass).
 */

#define NH 2 /* hosts */
#define NM 2 /* managers */

#ifndef MOUNTS
#define MOUNTS 1 /* mount/unmount rounds per host */
#endif
#ifndef CRASHES
#define CRASHES 1 /* manager crashes (< NM) */
#endif
#ifndef ZOMBIES
#define ZOMBIES 0 /* leases of running managers that expire */
#endif
#ifndef HOSTEXP
#define HOSTEXP 1 /* host leases that expire while holding the gref lock */
#endif
#ifndef RETRIES
#define RETRIES 1 /* vf_volume_mount re-runs after a conflicting final txn */
#endif

#define READY 0
#define MOUNTED 1
#define DONE 7    /* claim value "done <n>" (no lease) */
#define REMOVER 9 /* lock holder id of the remover (hosts 1..NH, managers 1..NM) */

/* ---------------- the KV store ---------------- */
bool exists = 1;   /* state/<vol> present (remove deletes every key) */
bit state = READY; /* state/<vol> */
byte gref = 0;     /* gref/<vol> */
bool client[NH];   /* client/<vol>/<node> */
/* start_trigger/<vol> and start_marker/<vol> are counters; only their order
 * matters (a claim moves the marker up to the trigger it read), so the model
 * keeps st_pend (trigger > marker) and st_marked (marker > 0). */
bool st_pend = 0;
bool st_marked = 0;
bool sp_pend = 0;  /* stop_trigger/<vol> > stop_marker/<vol> */
bool sp_marked = 0;
byte st_claim = 0; /* start_claim/<vol>: 0 absent, m+1 live (lease of m), DONE */
byte sp_claim = 0; /* stop_claim/<vol> */
byte server = 0;   /* server/<vol>: 0 absent, m+1 (attached to m's lease) */
byte glock = 0;    /* lock/gref/<vol> holder */
byte slock = 0;    /* lock/state/<vol> holder */

/* ---------------- outside the store ---------------- */
bool srv[NM];     /* a file server for the volume runs on manager m */
bool alive[NM];   /* manager process running */
bool lease[NM];   /* manager lease valid in the store */
byte crashes = 0;
byte zombies = 0;
byte hostexp = 0;
bool hmounted[NH]; /* host has the file system mounted locally */
byte hdone = 0;    /* hosts finished */

#define NSERVERS (srv[0] + srv[1])
#define LIVE(c) ((c) > 0 && (c) <= NM)
/* the invariants checked in every state */
#define P_GREF (gref == client[0] + client[1])  /* gref counts the client keys */
#define P_READY_EMPTY (state == MOUNTED || gref == 0) /* no host on a Ready volume */
#define P_ONE_SERVER (NSERVERS <= 1)

#ifdef DAEMON_CRASH
#define KILL_SERVER(m) skip
#else
#define KILL_SERVER(m) srv[m] = 0
#endif

/* mgr_do_stop re-checks server/ under the state lock and leaves a volume served
 * by another live manager alone (VF_ECONFLICT: the claim is dropped and the
 * serving manager re-claims the orphan).  -DSTOP_CLAIM_RACE: the code before
 * ee56f8d, which checked server/ only in the read before the stop claim. */
#if defined(STOP_CLAIM_RACE) || defined(STOP_ANY_MANAGER)
#define STOP_NOT_MINE(m) 0
#else
#define STOP_NOT_MINE(m) (server != 0 && server != m + 1)
#endif

inline expire_manager(m)
{
	lease[m] = 0;
	if
	:: slock == m + 1 -> slock = 0
	:: else
	fi;
	if
	:: st_claim == m + 1 -> st_claim = 0
	:: else
	fi;
	if
	:: sp_claim == m + 1 -> sp_claim = 0
	:: else
	fi;
	if
	:: server == m + 1 -> server = 0
	:: else
	fi
}

/* fs start on manager m ("already serving: same answer") */
inline fs_start(m)
{
	srv[m] = 1;
	assert(P_ONE_SERVER || zombies > 0)
}

/* mgr_do_start, with the state lock held throughout; ok: 1 done, 0 error;
 * restart: the reconciler's restart job (only a volume still Mounted).
 * The lock is released in the final txn, or here (merged with the claim end). */
inline do_start(m, ok, restart)
{
	ok = 0;
	if
	:: atomic { slock == 0 && lease[m] -> slock = m + 1;
		if
		:: !exists || (state == MOUNTED && server != 0) -> ok = 1 /* removed, or served */
		:: exists && state != MOUNTED && server != 0 && server != m + 1 ->
			ok = 3 /* the old incarnation's server is recorded: VF_EBUSY, wait */
		:: else ->
			if
			:: server == m + 1 -> srv[m] = 0 /* ours, of a removed incarnation */
			:: else
			fi;
			if
			:: restart && state != MOUNTED -> ok = 1 /* nothing to restart */
			:: else
			fi
		fi }
		if
		:: ok == 3 -> ok = 0 /* the claim is dropped: retried (an orphan) */
		:: ok == 1
		:: else ->
			fs_start(m);
			/* txn [LOCK_HELD, VERSION_EQ state]: put info, server (lease),
			 * state=Mounted; UNLOCK */
			atomic {
				if
				:: slock == m + 1 && exists -> server = m + 1; state = MOUNTED; slock = 0; ok = 1
				:: else -> srv[m] = 0 /* "start not recorded": mgr_fs_stop */
				fi }
		fi
	:: atomic { !lease[m] -> skip } /* lock(): ELEASE */
	fi
}

/* mgr_do_stop: flip Mounted to Ready if gref == 0, then stop our server; the
 * state lock is held until the server is down (released in handler_end) */
inline do_stop(m, ok)
{
	ok = 0;
	if
	:: atomic { slock == 0 && lease[m] -> slock = m + 1;
		if
		:: !exists || state != MOUNTED ->
			/* mgr_unserve_removed: stop our server, delete server/ if ours */
			ok = 1;
			srv[m] = 0;
			if
			:: server == m + 1 -> server = 0
			:: else
			fi
		:: exists && state == MOUNTED && STOP_NOT_MINE(m) ->
			slock = 0; ok = 3 /* not ours to stop: VF_ECONFLICT, drop the claim */
		:: exists && state == MOUNTED && !STOP_NOT_MINE(m) && gref > 0 ->
			ok = 1 /* keep serving */
		:: else /* gref == 0 as read */
		fi }
		if
		:: ok == 3 -> ok = 0
		:: ok == 1
		:: ok == 0 ->
			/* txn [LOCK_HELD, VERSION_EQ gref, VALUE_EQ state Mounted]:
			 * state=Ready, delete server/ (no UNLOCK) */
			atomic {
				ok = 1; /* ECONFLICT: "a host took a reference": ok */
				if
#ifdef ORIGINAL_STOP_RACE
				:: slock == m + 1 && exists && state == MOUNTED ->
#else
				:: slock == m + 1 && exists && state == MOUNTED && gref == 0 ->
#endif
					state = READY; server = 0; ok = 2
#ifdef STOP_ANY_MANAGER
					; slock = 0 /* the revision before 7d29adf: UNLOCK in the txn */
#endif
				:: else
				fi }
			/* then mgr_fs_stop if we serve it (unlock: handler_end) */
			if
			:: ok == 2 -> srv[m] = 0; ok = 1
			:: else
			fi
		fi
	:: atomic { !lease[m] -> skip }
	fi
}

/* the end of a handler: release the state lock if still held, close the claim
 * ("done", or delete it: the reconciler retries an orphan) */
inline handler_end(m, claim, ok)
{
	atomic {
		if
		:: slock == m + 1 -> slock = 0
		:: else
		fi;
		if
		:: claim == m + 1 && ok -> claim = DONE
		:: claim == m + 1 && !ok -> claim = 0
		:: else
		fi;
		ok = 0 }
}

proctype Manager(byte m)
{
	byte ok;
	{
end_idle:
	do
	/* ---- start_trigger PUT / reconciler: claim strictly up, or an orphan ---- */
	:: atomic { lease[m] && exists && (st_pend || (st_marked && st_claim == 0)) ->
			st_pend = 0; st_marked = 1; st_claim = m + 1 };
		do_start(m, ok, 0);
		handler_end(m, st_claim, ok)
	/* ---- stop_trigger PUT / reconciler: read trigger, marker, claim and
	 * server/; only the serving manager (or any, when server/ is absent)
	 * claims; then the claim txn [VERSION_EQ marker (ABSENT claim)] ---- */
	:: atomic { lease[m] && exists && (sp_pend || (sp_marked && sp_claim == 0)) &&
		    (server == 0 || server == m + 1
#ifdef STOP_ANY_MANAGER
		     || 1
#endif
		    ) -> skip };
		if
		:: atomic { lease[m] && exists && (sp_pend || (sp_marked && sp_claim == 0))  ->
			sp_pend = 0; sp_marked = 1; sp_claim = m + 1 }
		:: else -> goto idle /* another manager claimed meanwhile */
		fi;
		do_stop(m, ok);
		handler_end(m, sp_claim, ok);
idle:
		skip
	/* ---- reconciler: Mounted but the server's lease is gone: restart ---- */
	:: atomic { lease[m] && exists && state == MOUNTED && server == 0 && !LIVE(st_claim) };
		do_start(m, ok, 1);
		atomic {
			if
			:: slock == m + 1 -> slock = 0
			:: else
			fi;
			ok = 0 }
	/* ---- server/ watch or reconciler: a server the store no longer names ---- */
	:: atomic { lease[m] && srv[m] && server != m + 1 -> srv[m] = 0 }
	/* ---- check (start trigger of a served volume, reconcile pass): the
	 * volume is removed or not Mounted but server/ names us: read state and
	 * server/, stop the server, delete server/ (txn [VALUE_EQ ours]) ---- */
	:: atomic { lease[m] && server == m + 1 && (!exists || state != MOUNTED) -> srv[m] = 0 };
		atomic {
			if
			:: server == m + 1 -> server = 0
			:: else
			fi }
#ifndef NOIDLE
	/* ---- reconciler: Mounted with a server, no host, unchanged for two
	 * passes: mgr_do_idle try-locks the gref lock (a mounting host holds it),
	 * reads gref == 0 and Mounted, bumps stop_trigger fenced, unlocks.  The
	 * reconciler's own list conditions are not modelled (more behaviour) ---- */
	:: atomic { lease[m] && glock == 0 && exists && state == MOUNTED && gref == 0 &&
		    !sp_pend -> sp_pend = 1 }
#endif
	/* ---- lease lost (zombie noticed it): stop our servers, new lease ---- */
	:: atomic { !lease[m] -> srv[m] = 0; lease[m] = 1 }
	od
	} unless { atomic { !alive[m] -> skip } }
}

/* A host: MOUNTS rounds of vf_volume_mount and vf_volume_unmount (one mount id
 * per host: the first id takes the global reference).  The last mount may stay
 * mounted: property 1 is checked on it at quiescence. */
proctype Host(byte h)
{
	byte n = 0;
	byte tries;
	byte rs; /* server/ as read: who serves */
	bool ok;

	do
	:: n < MOUNTS ->
		n++;
		tries = 0;
		/* ================= vf_volume_mount ================= */
again:
		/* lock(gref) reading state, gref, client, info, start_trigger, server;
		 * cold (not Mounted with a server): txn [LOCK_HELD, VERSION_EQ
		 * start_trigger] start_trigger+1 (merged into this step) */
		atomic { glock == 0 -> glock = h + 1;
			if
			:: !exists -> goto mfail /* "does not exist" */
			:: exists && state == MOUNTED && server != 0 -> rs = server /* warm */
			:: else -> rs = 0; st_pend = 1 /* cold */
			fi }
		if
		:: rs == 0 ->
			/* vol_wait_mounted: re-read on every watch event (and each second) */
			if
			:: atomic { !exists -> goto mfail } /* "removed while mounting" */
			:: atomic { exists && state == MOUNTED && server != 0 -> rs = server }
			:: atomic { exists && !(state == MOUNTED && server != 0) && !st_pend &&
				    !LIVE(st_claim) -> goto mretry }
				/* our start was handled (marker >= our bump, claim done or
				 * gone), then the state went back: ask again */
#ifndef NOTIMEOUT
			:: /* time-out: txn [LOCK_HELD, VERSION_EQ stop_trigger] +1 */
				atomic {
					if
					:: glock == h + 1 && exists -> sp_pend = 1
					:: else
					fi;
					goto mfail }
#endif
			fi
		:: else
		fi;
		/* read info, mount locally: works if that server runs; if it does not
		 * and server/ changed since the read, go again */
		atomic {
			if
			:: srv[rs - 1] -> hmounted[h] = 1
			:: !srv[rs - 1] && server != rs -> goto mretry
			:: else -> goto mfail
			fi }
		/* txn [LOCK_HELD, VALUE_EQ state Mounted, VERSION_EQ gref, client]:
		 * gref+1, put client, UNLOCK.  On a conflict: go again */
		atomic {
			if
			:: glock == h + 1 && exists && state == MOUNTED ->
				gref++; client[h] = 1; glock = 0; ok = 1;
				goto mounted
			:: else
			fi }
mretry: /* undo the local mount, unlock, run vol_mount_once again (bounded) */
		atomic {
			hmounted[h] = 0;
			if
			:: glock == h + 1 -> glock = 0
			:: else
			fi;
			if
			:: tries < RETRIES -> tries++; goto again
			:: else
			fi }
mfail:
		atomic {
			hmounted[h] = 0;
			assert(!client[h]); /* a failed mount leaves no client key */
			if
			:: glock == h + 1 -> glock = 0
			:: else
			fi;
			goto next }
mounted:
progress_mounted:
		/* ================= vf_volume_unmount (or stay mounted) ================= */
		if
		:: n == MOUNTS -> goto next
		:: skip
		fi;
unmount_again:
		/* lock(gref) reading state, gref, client, stop_trigger */
		atomic { glock == 0 -> glock = h + 1 }
		/* local unmount; txn [LOCK_HELD, VERSION_EQ gref, client, stop_trigger]:
		 * gref-1, delete client, stop_trigger+1 when gref reaches 0, UNLOCK */
		atomic {
			hmounted[h] = 0;
			if
			:: glock == h + 1 ->
				assert(client[h] && gref > 0);
				gref--;
				client[h] = 0;
				if
				:: gref == 0 -> sp_pend = 1
				:: else
				fi;
				glock = 0
			:: else -> /* an error: the caller (Docker) retries the unmount */
				if
				:: glock == h + 1 -> glock = 0
				:: else
				fi;
				goto unmount_again
			fi }
next:
progress_next:
		atomic { rs = 0; ok = 0; tries = 0 }
	:: n == MOUNTS -> break
	od;
	hdone++
}

/* vf_volume_remove: both locks; refuse while gref > 0; else delete every key */
proctype Remover()
{
	if
	:: skip
	:: goto rm_end
	fi;
	atomic { glock == 0 -> glock = REMOVER }
	atomic { slock == 0 -> slock = REMOVER }
	atomic {
		if
		:: exists && gref == 0 && glock == REMOVER && slock == REMOVER ->
			/* every key but server/<vol> */
			exists = 0; state = READY;
#ifdef OLD_REMOVE
			server = 0; /* before 7ceb3ce: server/<vol> deleted too */
#endif
			st_pend = 0; sp_pend = 0; st_marked = 0; sp_marked = 0;
			st_claim = 0; sp_claim = 0
		:: else /* VF_EBUSY naming the hosts */
		fi;
		glock = 0;
		slock = 0 }
#ifdef RECREATE
	/* vf_volume_create: txn [ABSENT state] put state=Ready, gref=0, info */
	if
	:: atomic { !exists -> exists = 1; state = READY; gref = 0 }
	:: skip
	fi;
#endif
rm_end:
	skip
}

/* Faults: crash a manager; expire the lease of a crashed manager (always, in
 * the end), of a running one (a zombie), or of a host holding the gref lock. */
proctype Faults()
{
	do
	:: atomic { crashes < CRASHES ->
		if
		:: alive[0] -> alive[0] = 0; KILL_SERVER(0)
		:: alive[1] -> alive[1] = 0; KILL_SERVER(1)
		fi;
		crashes++ }
	:: atomic { !alive[0] && lease[0] -> expire_manager(0) }
	:: atomic { !alive[1] && lease[1] -> expire_manager(1) }
	:: atomic { zombies < ZOMBIES ->
		if
		:: alive[0] && lease[0] -> expire_manager(0)
		:: alive[1] && lease[1] -> expire_manager(1)
		fi;
		zombies++ }
	:: atomic { hostexp < HOSTEXP && glock > 0 && glock <= NH -> glock = 0; hostexp++ }
	:: atomic { (alive[0] || !lease[0]) && (alive[1] || !lease[1]) -> break }
	od
}

/* Invariants, in every reachable state. */
active proctype Invariants()
{
end_inv:
	atomic { !(P_GREF && P_READY_EMPTY && (P_ONE_SERVER || zombies > 0)) ->
		assert(P_GREF);
		assert(P_READY_EMPTY);
		assert(P_ONE_SERVER || zombies > 0) }
}

/* Quiescence: nothing else can move (every process at an end state or blocked). */
active proctype Quiescence()
{
end_q:
	timeout ->
	assert(hdone == NH);                  /* every mount/unmount returned */
	assert(P_GREF);
	/* property 1: a recorded host is served by a running server */
	assert(gref == 0 || (exists && state == MOUNTED && server != 0 && srv[server - 1]));
	assert(hmounted[0] == client[0] && hmounted[1] == client[1]);
	assert(P_ONE_SERVER);
	/* no leak: an unused or removed volume has no server left on a live manager */
	assert(gref > 0 || ((!srv[0] || !alive[0]) && (!srv[1] || !alive[1])))
}

init
{
	atomic {
		alive[0] = 1; alive[1] = 1;
		lease[0] = 1; lease[1] = 1;
		run Manager(0);
		run Manager(1);
		run Host(0);
		run Host(1);
#ifndef NOREMOVE
		run Remover();
#endif
		run Faults()
	}
}
