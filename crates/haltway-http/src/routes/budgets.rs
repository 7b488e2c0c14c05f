//! Credit budgets: a tenant reads its balance and usage history; an admin key sets and tops
//! up any tenant's.

// The handlers' shared imports and extractors.
use super::*;

use haltway_core::{BudgetChange, ChargeQuery};

use crate::budget_views::{
    BudgetParams, BudgetView, ChangeBudget, ChargeList, ChargeParams, ChargeView,
};

/// The tenant a request names: the caller's own, or (for an admin key) any.
fn whose(caller: &Caller, named: Option<String>) -> AppResult<TenantId> {
    match named {
        None => Ok(caller.tenant.clone()),
        Some(t) if t == caller.tenant.as_str() => Ok(caller.tenant.clone()),
        Some(t) => {
            caller.admin()?;
            crate::keys::check_label("tenant", &t).map_err(super::keys::key_error)?;
            Ok(TenantId::from(t))
        }
    }
}

fn view(tenant: &TenantId, balance: Option<u64>) -> BudgetView {
    BudgetView {
        tenant: tenant.as_str().to_owned(),
        budgeted: balance.is_some(),
        balance,
    }
}

/// A tenant's budget.
#[utoipa::path(
    get, path = "/v1/budget", tag = "budgets",
    params(BudgetParams),
    responses(
        (status = 200, description = "The budget.", body = BudgetView),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 403, description = "Another tenant's, without an admin key.", body = ErrorBody),
        (status = 422, description = "A parameter is invalid.", body = ErrorBody),
        (status = 503, description = "The store is unavailable.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn get_budget(
    State(state): St,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<BudgetView>> {
    let p: BudgetParams = query(raw)?;
    let tenant = whose(&caller, p.tenant)?;
    let budget = state.engine.budget(&tenant).await?;
    Ok(Json(view(&tenant, budget.map(|b| b.balance))))
}

/// A tenant's usage history, newest first: every charge (a job's fixed cost at creation, each
/// delivered entry), refund (entries of a job cancelled under `discard`) and operator's change.
#[utoipa::path(
    get, path = "/v1/budget/charges", tag = "budgets",
    params(ChargeParams),
    responses(
        (status = 200, description = "A page of the history.", body = ChargeList),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 403, description = "Another tenant's, without an admin key.", body = ErrorBody),
        (status = 422, description = "A parameter is invalid.", body = ErrorBody),
        (status = 503, description = "The store is unavailable.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn list_charges(
    State(state): St,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<ChargeList>> {
    let p: ChargeParams = query(raw)?;
    let tenant = whose(&caller, p.tenant)?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    if p.before.is_some_and(|b| b > MAX_ID) {
        return Err(ApiError::invalid(
            "before",
            format!("must be at most {MAX_ID}"),
        ));
    }
    let job = match p.job_id {
        Some(j) => match j.parse() {
            Ok(id) => Some(id),
            // No job has that id, so none of its lines exist.
            Err(_) => {
                return Ok(Json(ChargeList {
                    data: Vec::new(),
                    next_cursor: None,
                }));
            }
        },
        None => None,
    };
    let mut lines = state
        .engine
        .charges(
            &tenant,
            &ChargeQuery {
                job,
                before: p.before,
                limit: limit + 1,
            },
        )
        .await?;
    let more = lines.len() > limit;
    lines.truncate(limit);
    let next_cursor = if more {
        lines.last().map(|c| c.id.to_string())
    } else {
        None
    };
    Ok(Json(ChargeList {
        data: lines.iter().map(ChargeView::from).collect(),
        next_cursor,
    }))
}

async fn change(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    make: fn(u64) -> BudgetChange,
) -> AppResult<Json<BudgetView>> {
    caller.admin()?;
    let req: ChangeBudget = json_body(state, headers, body)?;
    crate::keys::check_label("tenant", &req.tenant).map_err(super::keys::key_error)?;
    if req.amount > haltway_core::kernel::MAX_BALANCE {
        return Err(ApiError::invalid(
            "amount",
            format!("must be at most {}", haltway_core::kernel::MAX_BALANCE),
        ));
    }
    let tenant = TenantId::from(req.tenant);
    let budget = state
        .engine
        .change_budget(&tenant, make(req.amount))
        .await
        .map_err(|e| match e {
            // The amount is valid; what the balance holds already makes it too much.
            haltway_core::Error::InvalidInput {
                field: "amount",
                reason,
            } if matches!(make(0), BudgetChange::TopUp(_)) => ApiError::conflict(reason),
            other => ApiError::from(other),
        })?;
    Ok(Json(view(&tenant, Some(budget.balance))))
}

/// Set a tenant's balance (creating its budget): from now on its jobs are charged, and what
/// the balance cannot cover is refused.
#[utoipa::path(
    put, path = "/v1/budget", tag = "budgets",
    request_body = ChangeBudget,
    responses(
        (status = 200, description = "The budget as it now stands.", body = BudgetView),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 403, description = "Not an admin key.", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON.", body = ErrorBody),
        (status = 422, description = "A field is invalid.", body = ErrorBody),
        (status = 503, description = "The store is unavailable.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn set_budget(
    State(state): St,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<BudgetView>> {
    change(&state, &caller, &headers, body, BudgetChange::Set).await
}

/// Add credits to a tenant's balance (creating its budget from zero).
#[utoipa::path(
    post, path = "/v1/budget/top-up", tag = "budgets",
    request_body = ChangeBudget,
    responses(
        (status = 200, description = "The budget as it now stands.", body = BudgetView),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No valid API key.", body = ErrorBody),
        (status = 403, description = "Not an admin key.", body = ErrorBody),
        (status = 415, description = "The body is not sent as JSON.", body = ErrorBody),
        (status = 409, description = "The balance would pass 9223372036854775807.", body = ErrorBody),
        (status = 422, description = "A field is invalid.", body = ErrorBody),
        (status = 503, description = "The store is unavailable.", body = ErrorBody),
    ),
    security(("bearer" = []), ("api_key" = []))
)]
pub(super) async fn top_up_budget(
    State(state): St,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<BudgetView>> {
    change(&state, &caller, &headers, body, BudgetChange::TopUp).await
}
